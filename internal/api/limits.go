package api

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// The connection caps of the server's listener ([LimitListener]).
//
// A MinIO node multiplexes its requests on an HTTP/2 connection or a few,
// and an HTTP/1.1 client holds about one connection per request in
// flight; a request takes about a millisecond, so 512 connections from
// one address carry far more requests than one KES server can answer, and
// 4096 connections hold eight such clients at full load. Each open connection costs the server
// about 50-80 KB (TLS and header buffers, goroutine stack), so the total
// cap bounds that memory to a few hundred MB and the per-address cap lets
// one attacker take only an eighth of it. Behind a TLS proxy all clients
// come from the proxy's address: its connections count against one
// address.
const (
	MaxConns      = 4096
	MaxConnsPerIP = 512
)

// refusalLogInterval is how often at most a refused connection is logged:
// a flood of connections must not become a flood of log lines.
const refusalLogInterval = 10 * time.Second

// LimitListener returns a listener that keeps at most total connections
// open at a time, and at most perIP from one IP address (IPv4-mapped IPv6
// addresses count as IPv4). A connection over a cap is closed as soon as
// it is accepted, with a TCP reset, so that it neither waits in the
// kernel's backlog nor holds a goroutine; Accept then waits for the next
// one. A connection counts until it is closed. Refusals are logged to log
// at WARN, at most once per 10 s with the count since the last record;
// nil log logs nothing. total or perIP ≤ 0 means no cap.
func LimitListener(ln net.Listener, total, perIP int, log *slog.Logger) net.Listener {
	return &limitListener{Listener: ln, total: total, perIP: perIP, log: log, byIP: make(map[netip.Addr]int)}
}

type limitListener struct {
	net.Listener
	total, perIP int
	log          *slog.Logger

	mu      sync.Mutex
	open    int
	byIP    map[netip.Addr]int
	refused int       // since the last log record
	logged  time.Time // when a refusal was last logged
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.acquire(ip) {
			return &limitConn{Conn: c, l: l, ip: ip}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset: no FIN handshake, no TIME_WAIT
		}
		c.Close()
	}
}

// acquire counts a new connection from ip, or reports false (and counts
// the refusal) if it is over a cap.
func (l *limitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	reason := ""
	switch {
	case l.total > 0 && l.open >= l.total:
		reason = "total"
	case l.perIP > 0 && l.byIP[ip] >= l.perIP:
		reason = "per address"
	default:
		l.open++
		l.byIP[ip]++
		return true
	}
	l.refused++
	if l.log != nil && time.Since(l.logged) >= refusalLogInterval {
		l.log.Warn("connection refused: too many connections",
			slog.String("limit", reason), slog.String("ip", ip.String()),
			slog.Int("total", l.total), slog.Int("per_ip", l.perIP), slog.Int("refused", l.refused))
		l.refused, l.logged = 0, time.Now()
	}
	return false
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// remoteIP is the IP address of c's peer; the zero Addr if it has none.
func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// limitConn releases its place in the listener's caps when it is closed,
// once.
type limitConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// MaxHeaderBytes bounds the request line and headers of a request (HTTP/2:
// the header list). Go's default is 1 MB, which let 1,000 connections
// hold 1.8 GB; KES requests carry a few hundred bytes of headers, and a
// client certificate forwarded by a TLS proxy (URL-escaped PEM) about 3 KB.
// A larger request is answered 431 and its connection closed.
const MaxHeaderBytes = 32 << 10

// The HTTP/2 limits (Go's defaults in parentheses). MinIO multiplexes its
// requests on one connection; Go's client opens another connection when
// a server's stream limit is reached, so a lower limit costs it nothing.
const (
	// h2MaxStreams is the streams a client may have open on a connection
	// (250). Go's server also runs at most this many handlers per
	// connection and closes a connection that queues 4× as many.
	h2MaxStreams = 100
	// h2MaxFrame is the largest frame the server reads (1 MB): the
	// protocol's minimum, so that no connection makes the server buffer
	// a megabyte for one frame. Bodies arrive in several frames.
	h2MaxFrame = 16 << 10
	// h2ConnWindow and h2StreamWindow bound the request body data a
	// client may send ahead of the handlers (1 MB each).
	h2ConnWindow   = 256 << 10
	h2StreamWindow = 64 << 10
	// h2WriteTimeout closes a connection on which nothing could be
	// written for this long (none): a client that stops reading.
	h2WriteTimeout = 30 * time.Second
)

func http2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          h2MaxStreams,
		MaxReadFrameSize:              h2MaxFrame,
		MaxReceiveBufferPerConnection: h2ConnWindow,
		MaxReceiveBufferPerStream:     h2StreamWindow,
		WriteByteTimeout:              h2WriteTimeout,
	}
}

// h2MinResets is how many of its streams an HTTP/2 client may reset before
// their answer until its connection may be dropped (h2Reset).
const h2MinResets = 64

// h2Reset reports whether the client of r, an HTTP/2 request, has reset its
// stream (r's context has ended), and counts it. first says that the
// handler has not started yet; it then also counts the stream.
//
// A client that resets its streams at once makes the server start and stop
// a handler for each while costing itself nothing (rapid reset,
// CVE-2023-44487): Go's server bounds the handlers running, but not the
// rate. A connection on which at least h2MinResets streams, and more than
// half of all its streams, were reset is closed: a client that gives up on
// most of its requests loses nothing by reconnecting.
func (s *Server) h2Reset(r *http.Request, first bool) bool {
	c, ok := r.Context().Value(connKey{}).(*connInfo)
	if !ok {
		return r.Context().Err() != nil
	}
	n := c.streams.Load()
	if first {
		n = c.streams.Add(1)
	}
	if r.Context().Err() == nil {
		return false
	}
	resets := c.resets.Add(1)
	if resets >= h2MinResets && resets*2 > n && c.dropped.CompareAndSwap(false, true) {
		s.errLog.Warn("http2: connection dropped: too many streams reset by the client",
			slog.String("ip", remoteIP(c.conn).String()), slog.Int64("streams", n), slog.Int64("resets", resets))
		if tc, ok := c.conn.(*tls.Conn); ok {
			tc.NetConn().Close() // no close_notify: it could wait for a blocked write
		} else {
			c.conn.Close()
		}
	}
	return true
}
