// Package api is the HTTP side of the OpenKES server: the route table, the
// handlers, the error mapping and the server lifecycle.
//
// It depends on auth, crypto, keystore, log, metrics and version, never the
// other way round. The wire format (paths, bodies, status codes and error
// messages) is upstream KES's, spec api.md; where upstream is buggy the
// handlers say so.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
	"github.com/openkes/kes/internal/ratelimit"
	"github.com/openkes/kes/internal/version"
)

// KeyStore is what the handlers need of the key cache in front of the
// configured store (internal/keystore/cache).
//
// Every method that takes a context must return once it ends, with an
// error wrapping ctx.Err(), even if the store behind does not answer: the
// handlers pass the route's deadline and answer 503 when it passes.
type KeyStore interface {
	// Lookup returns a cached key without calling the store: the fast
	// path, which needs no deadline.
	Lookup(name string) (crypto.Key, bool)
	Get(ctx context.Context, name string) (crypto.Key, error)
	Create(ctx context.Context, name string, value []byte) error
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error)
	Status(ctx context.Context) (keystore.State, error)
	// Read returns a stored record as the store holds it, uncached: what
	// soft deletion copies (internal/keystore/tombstone).
	Read(ctx context.Context, name string) ([]byte, error)

	// Refresh returns the key read from the store again, unless that
	// happened less than a second ago (then the cached key): bounded
	// store reads for keys another node may have rotated.
	Refresh(ctx context.Context, name string) (crypto.Key, error)
	// Replace is [keystore.Replacer.Replace]; it returns an error
	// matching errors.ErrUnsupported if the store cannot compare and
	// swap.
	Replace(ctx context.Context, name string, old, new []byte) error
}

// Config is the configuration of a [Server]. Keys, Auth, ErrorLog,
// AuditLog and Metrics are required; every other zero value has a default.
//
// The logs count their events into Metrics only if they were created with
// Metrics.ErrorEvent and Metrics.AuditEvent as their onEvent hooks: the
// server does not change logs it is handed, whose first records (the key
// store login) may predate it.
type Config struct {
	Keys     KeyStore
	Auth     *auth.Authorizer
	ErrorLog *log.ErrorLog
	AuditLog *log.AuditLog
	Metrics  *metrics.Metrics

	// Routes overrides per-route settings, keyed by the exact route path
	// (with the trailing slash of prefix routes). Unknown paths are ignored.
	Routes map[string]RouteConfig

	// Deletion says how the delete route deletes keys. The zero value
	// deletes them at once, as upstream KES (docs/key-deletion.md).
	Deletion Deletion

	// KeyType is the type of keys the create API makes. Zero means
	// crypto.DefaultKeyType(), which depends on the CPU.
	KeyType crypto.KeyType

	// Version and Commit are reported by /version and /v1/status (the
	// binary passes its [version.Get]). Empty means [version.Unknown].
	Version, Commit string

	// StartTime is when the server started: the creation time of config
	// policies. Zero means time.Now() at New.
	StartTime time.Time

	// Rand is the source of key material; nil means crypto/rand.
	Rand io.Reader

	// Now returns the current time: the deletion time of soft-deleted
	// keys and the cutoff of [Server.Purge]. Nil means time.Now.
	Now func() time.Time
}

// Server is a KES HTTP handler. It is safe for concurrent use.
//
// What a configuration reload may change (key store, policies, route
// settings) lives in an immutable [state] that [Server.Update] replaces
// atomically: a request uses the state it started with to its end.
type Server struct {
	state   atomic.Pointer[state]
	proxy   atomic.Pointer[auth.Proxy] // nil: no TLS-proxy mode
	errLog  *slog.Logger
	errors  *log.ErrorLog
	audit   *log.AuditLog
	metrics *metrics.Metrics
	keyType crypto.KeyType
	version string
	commit  string
	started time.Time
	rand    io.Reader
	now     func() time.Time

	purge purgeCursor // where the next Purge round goes on

	offline offlineLog // error lines of fail-fast answers

	// limits are the rate limits; nil when nobody is limited. limiter
	// holds the buckets, across configuration changes.
	limits  atomic.Pointer[ratelimit.Config]
	limiter *ratelimit.Limiter
	rateNow func() time.Time // the buckets' clock; nil: the request's start (tests set it)
	// notProxy limits the warnings about forwarded-certificate headers
	// from clients that are not proxies over all connections.
	notProxy warnLimiter
	// stacks runs HTTP/2 requests on goroutines with grown stacks; nil
	// runs each on its stream's goroutine (tests compare both).
	stacks *stackPool
}

// state is the part of a Server that a reload replaces.
type state struct {
	keys     KeyStore
	auth     *auth.Authorizer
	routes   []route
	deletion Deletion
	mux      *http.ServeMux          // every route; answers what the fast path does not
	handlers map[string]http.Handler // route path → handler, for the fast path
	// replaced is closed when Update replaces this state, so that long
	// requests (the log streams) can check their caller again.
	replaced chan struct{}
}

// New returns a Server for the config.
func New(cfg *Config) (*Server, error) {
	if cfg.Keys == nil || cfg.Auth == nil || cfg.ErrorLog == nil || cfg.AuditLog == nil || cfg.Metrics == nil {
		return nil, errors.New("api: incomplete server config")
	}
	s := &Server{
		errors:  cfg.ErrorLog,
		errLog:  cfg.ErrorLog.Logger(),
		audit:   cfg.AuditLog,
		metrics: cfg.Metrics,
		keyType: cfg.KeyType,
		version: cfg.Version,
		commit:  cfg.Commit,
		started: cfg.StartTime,
		rand:    cfg.Rand,
		now:     cfg.Now,
		limiter: ratelimit.NewLimiter(0),
		stacks:  newStackPool(serveJob),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.keyType == 0 {
		s.keyType = crypto.DefaultKeyType()
	}
	if s.version == "" {
		s.version = version.Unknown
	}
	if s.commit == "" {
		s.commit = version.Unknown
	}
	if s.started.IsZero() {
		s.started = time.Now()
	}
	s.Update(cfg.Keys, cfg.Auth, cfg.Routes, cfg.Deletion)
	return s, nil
}

// Update makes the server use keys, authorizer, routes and deletion
// settings for every request that starts from now on (and the next
// [Server.Purge]); requests in flight finish with what they had, except the
// log streams, which end when the new configuration no longer lets their
// caller call the route. keys and authorizer must not be nil.
func (s *Server) Update(keys KeyStore, authorizer *auth.Authorizer, routeConfig map[string]RouteConfig, deletion Deletion) {
	st := &state{
		keys:     keys,
		auth:     authorizer,
		routes:   routes(),
		deletion: deletion,
		mux:      http.NewServeMux(),
		handlers: make(map[string]http.Handler),
		replaced: make(chan struct{}),
	}
	for i := range st.routes {
		rt := &st.routes[i]
		if c, ok := routeConfig[rt.Path]; ok {
			if c.Timeout > 0 {
				rt.Timeout = c.Timeout
			}
			if public(c, rt) {
				rt.Auth = authIdentify
			}
		}
		h := s.handler(st, rt)
		st.mux.Handle(rt.Path, h)
		st.handlers[rt.Path] = h
		if rt.prefix() && isListRoute(rt.Path) {
			// MinIO's kms-go lists with an empty prefix as
			// /v1/key/list, without the slash: serve it instead of
			// redirecting (upstream answers 307), as the slashed form.
			alias := canonical(rt.Path, h)
			st.mux.Handle(rt.Path[:len(rt.Path)-1], alias)
			st.handlers[rt.Path[:len(rt.Path)-1]] = alias
		}
	}
	if old := s.state.Swap(st); old != nil {
		close(old.replaced)
	}
}

// canonical returns a handler that serves a request for a list route
// without its trailing slash as a request for path, the route with the
// slash and an empty resource: it is authorized, audited and answered
// exactly as upstream answers the request its redirect leads to. Policies
// name the slashed form (/v1/key/list/*), so checking the unslashed path
// would refuse identities that may list everything.
func canonical(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A handler must not modify the request it was given: serve a
		// shallow copy with its own URL, as http.StripPrefix does.
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path, r2.URL.RawPath = path, ""
		h.ServeHTTP(w, r2)
	})
}

func isListRoute(p string) bool {
	return p == "/v1/key/list/" || p == "/v1/policy/list/" || p == "/v1/identity/list/" || p == "/v1/key/deleted/list/"
}

// MaxRequestDuration returns how long a request that starts now may use
// the key store: the longest route timeout plus the grace for writing the
// answer. The log streams, which have no timeout, do not use the key store.
func (s *Server) MaxRequestDuration() time.Duration {
	longest := time.Duration(0)
	for _, rt := range s.state.Load().routes {
		longest = max(longest, rt.Timeout)
	}
	return longest + writeGrace
}

// SkipAuth reports whether routeConfig makes any route public that
// otherwise checks its caller's policy. The TLS layer must then request
// instead of require client certificates (identity-and-auth.md §3), so
// [NewTLSConfig] takes its answer.
//
// It is the one place that decides: the handlers ([Server.Update]), the
// start, the SIGHUP reload and the periodic TLS re-read all ask it, so they
// never disagree. skip_auth on a route that authenticates nobody anyway
// (/version) or only identifies (self-describe) does not count.
func SkipAuth(routeConfig map[string]RouteConfig) bool {
	for _, rt := range routes() {
		if c, ok := routeConfig[rt.Path]; ok && public(c, &rt) {
			return true
		}
	}
	return false
}

// ServeHTTP routes the request.
//
// Every route is registered on an http.ServeMux, which gives unknown
// paths, unclean paths and prefix routes without their slash the answers
// upstream's mux gives (404 text, redirects). The mux allocates per
// request, though, so clean paths of known routes are looked up in a map
// first: exact routes by the whole path, prefix routes (all of the form
// /v1/<group>/<op>/) by the path up to its third slash.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	if h := st.route(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	st.mux.ServeHTTP(w, r)
}

// route returns the handler of a clean path, or nil if the mux must decide.
func (s *state) route(path string) http.Handler {
	if strings.Contains(path, "//") || strings.Contains(path, "/.") {
		return nil // maybe unclean: the mux redirects
	}
	if h, ok := s.handlers[path]; ok {
		return h
	}
	for i, slashes := 1, 0; i < len(path); i++ {
		if path[i] == '/' {
			if slashes++; slashes == 3 {
				return s.handlers[path[:i+1]]
			}
		}
	}
	return nil
}

// ConnContext must be set as the http.Server's ConnContext: it gives each
// connection the place where its identity is computed once.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connInfo{conn: c})
}

type connKey struct{}

// connInfo holds what is the same for every request of a connection. HTTP/2
// serves many streams on one connection concurrently, hence the Once.
type connInfo struct {
	conn net.Conn
	once sync.Once
	id   kes.Identity
	err  *kes.Error
	ip   netip.Addr

	// forwarded is the client certificate a TLS proxy last forwarded on
	// this connection.
	forwarded forwardCache
	// notProxyWarned is set by the first request of the connection that
	// sends the forwarded-certificate header without being a proxy: the
	// error log warns once per connection.
	notProxyWarned atomic.Bool

	deadline time.Time // HTTP/1.1: the write deadline set on conn

	// HTTP/2: the connection's streams and those its client reset before
	// their answer, for dropping rapid-reset attackers (h2Reset).
	streams, resets atomic.Int64
	dropped         atomic.Bool
}

func (c *connInfo) identify(state *tls.ConnectionState) {
	if ap, err := netip.ParseAddrPort(c.conn.RemoteAddr().String()); err == nil {
		c.ip = ap.Addr().Unmap()
	}
	if state == nil {
		c.err = kes.ErrInsecureConnection
		return
	}
	id, err := auth.IdentifyTLS(state)
	if err != nil {
		var e *kes.Error
		if !errors.As(err, &e) {
			e = kes.ErrNoClientCert
		}
		c.err = e
		return
	}
	c.id = id
}

// identity returns the identity of the connection, computing it on the
// connection's first request.
func (c *connInfo) identity(state *tls.ConnectionState) (kes.Identity, netip.Addr, *kes.Error) {
	c.once.Do(func() { c.identify(state) })
	return c.id, c.ip, c.err
}

// conn returns the connInfo of r's connection. A handler used without
// ConnContext (tests) gets a new one for every request.
func conn(r *http.Request) *connInfo {
	if c, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		return c
	}
	return &connInfo{conn: fakeConn{addr: r.RemoteAddr}}
}

// fakeConn only answers RemoteAddr.
type fakeConn struct {
	net.Conn
	addr string
}

func (f fakeConn) RemoteAddr() net.Addr { return addrString(f.addr) }

type addrString string

func (a addrString) Network() string { return "tcp" }
func (a addrString) String() string  { return string(a) }
