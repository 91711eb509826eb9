package api

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// NewProxy returns the TLS-proxy mode of c (config tls.proxy): nil if c
// names no proxy and no header. With VerifyClients, forwarded certificates
// are verified against the roots the TLS layer verifies clients with (the
// system pool plus CAPath).
func NewProxy(c *TLSConfig) (*auth.Proxy, error) {
	pc := auth.ProxyConfig{Identities: c.ProxyIdentities, Header: c.ProxyHeader}
	if len(pc.Identities) == 0 && pc.Header == "" {
		return nil, nil
	}
	if c.VerifyClients {
		var err error
		if c.CAPath != "" {
			pc.Roots, err = LoadCertPool(c.CAPath)
		} else {
			pc.Roots, err = x509.SystemCertPool()
		}
		if err != nil {
			return nil, fmt.Errorf("tls: proxy roots: %w", err)
		}
	}
	return auth.NewProxy(pc), nil
}

// SetProxy makes every request from now on use the TLS-proxy mode p; nil
// turns it off. Requests of a listed proxy identity are then served as
// the client whose certificate the proxy forwards in p's header, with the
// client address of X-Forwarded-For in the audit log; any other client
// that sends the header is refused (auth.ErrNotProxy).
func (s *Server) SetProxy(p *auth.Proxy) { s.proxy.Store(p) }

// identify returns the identity and address of r's caller: those of its
// connection, or, for a TLS proxy, those of the client it forwards. The
// error is the reason the caller has no identity; with [auth.ErrNotProxy]
// the identity is the connection's, which sent a header it may not send.
func (s *Server) identify(r *request) (kes.Identity, netip.Addr, *kes.Error) {
	c := conn(r.Request)
	id, ip, err := c.identity(r.TLS)
	p := s.proxy.Load()
	if err != nil || p == nil {
		return id, ip, err
	}
	values := r.Header[p.Header()]
	if !p.IsProxy(id) {
		if len(values) == 0 {
			return id, ip, nil
		}
		return id, ip, auth.ErrNotProxy
	}
	if fwd, ok := auth.ForwardedIP(r.Header["X-Forwarded-For"]); ok {
		ip = fwd
	}
	fid, ferr := c.forwarded.identify(p, values)
	return fid, ip, ferr
}

// forwardCache remembers the client certificates a proxy connection
// forwarded last. nginx and HAProxy share their connections to the server
// between clients, so a connection carries a few clients in turn; most
// requests repeat one of the last values and cost a few string comparisons
// instead of a parse (and, with tls.auth on, a chain verification): about
// 0.3 µs instead of 25-130 µs on a busy 2-core machine
// (BenchmarkProxyIdentity). HTTP/2 serves streams concurrently, hence the
// lock.
type forwardCache struct {
	mu      sync.Mutex
	proxy   *auth.Proxy // the mode the entries were computed under
	entries [forwardCacheSize]forwardEntry
	next    int // the entry to replace next
}

// forwardCacheSize is how many forwarded certificates a connection
// remembers.
const forwardCacheSize = 4

type forwardEntry struct {
	value string
	fwd   auth.Forwarded
	err   *kes.Error
}

func (f *forwardCache) identify(p *auth.Proxy, values []string) (kes.Identity, *kes.Error) {
	if len(values) != 1 || values[0] == "" { // nothing to parse, nothing to cache
		_, err := p.Identify(values)
		return "", asKesError(err)
	}
	v := values[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.proxy != p {
		f.proxy, f.entries, f.next = p, [forwardCacheSize]forwardEntry{}, 0
	}
	for i := range f.entries {
		e := &f.entries[i]
		if e.value == v && (e.fwd.Expires.IsZero() || time.Now().Before(e.fwd.Expires)) {
			return e.fwd.Identity, e.err
		}
	}
	fwd, err := p.Identify(values)
	e := forwardEntry{value: v, fwd: fwd, err: asKesError(err)}
	f.entries[f.next] = e
	f.next = (f.next + 1) % forwardCacheSize
	return e.fwd.Identity, e.err
}

// asKesError returns err as the *kes.Error it is (auth's identify
// functions return nothing else), or nil.
func asKesError(err error) *kes.Error {
	if err == nil {
		return nil
	}
	var e *kes.Error
	if errors.As(err, &e) {
		return e
	}
	return auth.ErrProxyInvalidCert
}

// The warnings about forwarded-certificate headers from clients that are
// not proxies: one per connection (connInfo.notProxyWarned) and, over all
// connections, a burst of notProxyBurst, then one every notProxyEvery. An
// attacker who opens connections by the thousand writes a few lines; the
// audit log still has a line for each refused request, within its own
// limits on denied lines.
const (
	notProxyBurst = 10
	notProxyEvery = time.Second

	// notProxyLimitText says in the warning how it is limited.
	notProxyLimitText = "once per connection; over all connections 10 at once, then 1 a second"
)

// warnLimiter is the token bucket of the warnings over all connections.
// Its zero value is full.
type warnLimiter struct {
	mu         sync.Mutex
	used       float64 // tokens taken and not yet refilled
	last       time.Time
	suppressed uint64 // connections whose warning was left out since the last one written
}

// allow reports whether a warning may be written at now, and then how
// many connections' warnings were left out before it.
func (l *warnLimiter) allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := now.Sub(l.last); l.last.IsZero() || d > 0 {
		if !l.last.IsZero() {
			l.used = max(0, l.used-float64(d)/float64(notProxyEvery))
		}
		l.last = now
	}
	if l.used > notProxyBurst-1 {
		l.suppressed++
		return false, 0
	}
	l.used++
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
