// Package server runs a KES server: it connects the key store, serves the
// API over TLS, reloads its configuration on SIGHUP (or a test's trigger),
// re-reads the TLS files every 15 minutes and stops on a context.
//
// The command line (flags, config file, banner) lives in cmd/kes; this
// package imports none of it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
	"github.com/openkes/kes/internal/ratelimit"
	"github.com/openkes/kes/internal/version"
)

// gcPercent is the server's GOGC unless the environment sets one. A key
// server keeps a live heap of a few MB but allocates on every request, so
// the default 100 makes it collect very often: at 200, CPU per request
// under load drops by about 10% (kesload) for about 4 MB more RSS under
// load; idle RSS does not change.
const gcPercent = 200

// MemoryLimit is the server's soft memory limit (runtime/debug.SetMemoryLimit)
// unless the environment sets GOMEMLIMIT, which takes Go's forms (512MiB,
// 2GiB, off). Near the limit the garbage collector runs more often, so
// garbage from a burst (an HTTP/2 rapid-reset attack left 1.8 GB of it,
// collected minutes later) is collected before the process grows. A KES
// server's live heap is a few MB plus its cached keys, and 4096
// connections (api.MaxConns) hold about 300 MB, so the limit stays above
// what the server legitimately keeps: live memory above it would make the
// collector run without pause (at most half the CPU, Go's cap).
const MemoryLimit = 512 << 20

// tlsReloadInterval is how often the TLS files are read again, as upstream.
const tlsReloadInterval = 15 * time.Minute

// DefaultPurgeInterval is the time between two rounds of purging expired
// soft-deleted keys: a round is a few store listings, and purging is due
// after days, so minutes late is on time.
const DefaultPurgeInterval = 5 * time.Minute

// ShutdownGrace is how long a stopping server waits for requests in flight.
const ShutdownGrace = 3 * time.Second

// SinkShutdownGrace is how long a stopping server waits for its audit
// sinks to write the events queued for them.
const SinkShutdownGrace = 5 * time.Second

// retireMargin is how much longer than the longest request of the replaced
// configuration (api.Server.MaxRequestDuration) a replaced key store stays
// open for the requests in flight.
const retireMargin = 5 * time.Second

// Config is everything a server runs with, built from a config file or
// from the dev-mode defaults. A reload replaces all of it but Addr.
type Config struct {
	Addr     string // the listen address [ip]:port
	TLS      *api.TLSConfig
	Admin    kes.Identity
	Policies map[string]auth.PolicyConfig
	Routes   map[string]api.RouteConfig
	Cache    cache.Config
	// Connect opens the key store; it logs to the server's error log.
	Connect func(context.Context, *slog.Logger) (keystore.Store, error)
	// Banner names the key store in the startup banner (the KMS line).
	Banner string
	// HSM describes the HSM that wraps the stored records (the banner's
	// HSM line); empty means none.
	HSM string
	// HSMCounters, if not nil, reads the HSM operation counters for the
	// kes_hsm_operations and kes_hsm_errors metrics.
	HSMCounters func() (ops, errs uint64)
	Keys        []string // the keys created at start unless they exist
	// Deletion is how keys are deleted (soft deletion, protected keys).
	Deletion api.Deletion
	// PurgeInterval is the time between two rounds of purging expired
	// soft-deleted keys. Zero or negative means DefaultPurgeInterval.
	PurgeInterval time.Duration
	ErrorLevel    slog.Level
	AuditLevel    slog.Level

	// RateLimits are the request rate limits; the zero value limits
	// nobody.
	RateLimits ratelimit.Config

	// AuditStdoutOff keeps the audit log off Stdout. AuditFile and
	// AuditSyslog, if not nil, are audit sinks (docs/audit-sinks.md).
	// A reload does not change these three: they apply from the next
	// start.
	AuditStdoutOff bool
	AuditFile      *log.FileConfig
	AuditSyslog    *log.SyslogConfig
}

// Server runs a KES server. Its fields may be set until Run is called; the
// zero value writes nothing, uses the process environment and reloads on
// SIGHUP only if ReadConfig is set.
type Server struct {
	// Stdout receives the audit log and the start, reload and stop
	// messages; Stderr the error log and failed reloads. Nil means
	// io.Discard.
	Stdout, Stderr io.Writer
	// LookupEnv reads the environment (GOGC, GOMEMLIMIT); nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Reload, if not nil, replaces SIGHUP as the trigger of a reload.
	Reload <-chan struct{}
	// ReadConfig reads the configuration again for a reload; nil means
	// the server cannot reload.
	ReadConfig func() (*Config, error)
	// Started, if not nil, is called once the server listens on addr and
	// after every successful reload, with the configuration in force.
	Started func(c *Config, addr net.Addr)
}

// run is the state of one Run: what a reload replaces sits in srv (key
// store, policies, routes), tlsConf and the log levels.
type run struct {
	*Server
	start      time.Time
	srv        *api.Server
	keys       *cache.Cache[crypto.Key]
	current    atomic.Pointer[cache.Cache[crypto.Key]] // keys, for the metrics scrape
	tlsConf    atomic.Pointer[tls.Config]
	errLevel   *slog.LevelVar
	auditLevel *slog.LevelVar
	errLog     *log.ErrorLog
	metrics    *metrics.Metrics
	config     *Config
	started    *Config // the configuration of the start, whose audit sinks run

	// retired are the key caches that reloads replaced. Requests that
	// started before a reload may still use them, so they are closed once
	// the longest of those requests has passed (retireTimer), or when the
	// server stops.
	retired     []*cache.Cache[crypto.Key]
	retireTimer <-chan time.Time
}

// closeRetired closes the key caches replaced by reloads.
func (sv *run) closeRetired() {
	for _, c := range sv.retired {
		c.Close()
	}
	sv.retired, sv.retireTimer = nil, nil
}

// Run runs a server with c until ctx is done, then shuts it down and
// returns nil. It returns early with the error that keeps it from starting
// or serving.
func (s *Server) Run(ctx context.Context, c *Config) error {
	s = s.withDefaults()
	if _, ok := s.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
	if _, ok := s.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(MemoryLimit)
	}
	sv := &run{Server: s, start: time.Now(), config: c, started: c, errLevel: new(slog.LevelVar), auditLevel: new(slog.LevelVar)}
	sv.errLevel.Set(c.ErrorLevel)
	sv.auditLevel.Set(c.AuditLevel)
	// The logs count into the metrics from their first record on: the key
	// store logs its login before the API server exists.
	m := metrics.New(sv.start)
	sv.metrics = m
	sv.errLog = log.NewErrorLog(s.Stderr, sv.errLevel, m.ErrorEvent)
	sinks, err := openSinks(c, sv.errLog.Logger())
	if err != nil {
		return err
	}
	var console io.Writer = s.Stdout
	if c.AuditStdoutOff {
		console = nil
	}
	auditLog := log.NewAuditLog(console, sv.auditLevel, m.AuditEvent, sinks...)
	// Closing the audit log writes the pending summaries of denied
	// requests; both keep printing what is logged after. The sinks are
	// shut down last, when no request is left to log (deferred first).
	defer sv.shutdownSinks(auditLog)
	defer auditLog.Close()
	defer sv.errLog.Close()
	m.CountLogs(metrics.LogCounters{
		AuditSuppressed:  auditLog.Suppressed,
		AuditDropped:     auditLog.Dropped,
		ErrorDropped:     sv.errLog.Dropped,
		AuditSinkDropped: auditLog.SinkDropped,
	})

	authorizer, err := auth.New(c.Admin, c.Policies, sv.start)
	if err != nil {
		return err
	}
	keys, err := sv.connect(ctx, c)
	if err != nil {
		return err
	}
	defer func() {
		sv.keys.Close()
		sv.closeRetired()
	}()
	sv.keys = keys
	sv.current.Store(keys)
	m.KeyStoreOffline(func() bool { return sv.current.Load().Offline() })

	build := version.Get()
	sv.srv, err = api.New(&api.Config{
		Keys:      keys,
		Auth:      authorizer,
		ErrorLog:  sv.errLog,
		AuditLog:  auditLog,
		Metrics:   m,
		Routes:    c.Routes,
		Deletion:  c.Deletion,
		Version:   build.Version,
		Commit:    build.Commit,
		StartTime: sv.start,
	})
	if err != nil {
		return err
	}
	sv.srv.SetRateLimits(&c.RateLimits)
	conf, proxy, err := tlsConfig(c)
	if err != nil {
		return err
	}
	sv.tlsConf.Store(conf)
	sv.srv.SetProxy(proxy)

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	ln = api.LimitListener(ln, api.MaxConns, api.MaxConnsPerIP, sv.errLog.Logger())
	httpSrv := sv.srv.HTTPServer(c.Addr, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: conf.NextProtos,
		// Every handshake uses the current configuration, so a reload
		// changes certificates and client-auth mode for new connections.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return sv.tlsConf.Load(), nil },
	})
	if s.Started != nil {
		s.Started(c, ln.Addr())
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.ServeTLS(ln, "", "") }()

	// The purge loop stops and is waited for before the key store closes
	// (the deferred Close above runs after this).
	purgeCtx, stopPurge := context.WithCancel(ctx)
	purgeDone := make(chan struct{})
	go func() {
		defer close(purgeDone)
		purgeLoop(purgeCtx, sv.srv, c.PurgeInterval)
	}()
	defer func() {
		stopPurge()
		<-purgeDone
	}()

	reload := s.Reload
	if reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		ch := make(chan struct{})
		reload = ch
		go func() {
			for {
				select {
				case <-hup:
					select {
					case ch <- struct{}{}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	tlsTicker := time.NewTicker(tlsReloadInterval)
	defer tlsTicker.Stop()
	for {
		select {
		case err := <-serveErr:
			return err
		case <-reload:
			fmt.Fprintln(s.Stderr, "SIGHUP signal received. Reloading configuration...")
			if err := sv.reload(ctx, ln.Addr()); err != nil {
				fmt.Fprintf(s.Stderr, "Failed to reload server config: %v\n", err)
			}
		case <-sv.retireTimer:
			sv.closeRetired()
		case <-tlsTicker.C:
			if conf, proxy, err := tlsConfig(sv.config); err != nil {
				fmt.Fprintf(s.Stderr, "Failed to reload TLS configuration: %v\n", err)
			} else {
				sv.tlsConf.Store(conf)
				sv.srv.SetProxy(proxy)
			}
		case <-ctx.Done():
			fmt.Fprintln(s.Stdout, "\n=> Stopping server... Goodbye.")
			// End the log streams first: Shutdown waits for them.
			sv.errLog.Close()
			auditLog.Close()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
			defer cancel()
			if err := httpSrv.Shutdown(shutdownCtx); err != nil {
				httpSrv.Close()
			}
			if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
}

// purgeLoop runs a purge round (api.Server.Purge) at start and then every
// interval until ctx ends. A round's error is on the error log; the next
// round tries again.
func purgeLoop(ctx context.Context, srv *api.Server, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPurgeInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		srv.Purge(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// openSinks opens the audit sinks of c; they report failures to errLog.
func openSinks(c *Config, errLog *slog.Logger) ([]*log.Sink, error) {
	var sinks []*log.Sink
	if c.AuditFile != nil {
		sink, err := log.NewFileSink(*c.AuditFile, errLog)
		if err != nil {
			return nil, fmt.Errorf("failed to open the audit file: %w", err)
		}
		sinks = append(sinks, sink)
	}
	if c.AuditSyslog != nil {
		sink, err := log.NewSyslogSink(*c.AuditSyslog, errLog)
		if err != nil {
			for _, s := range sinks {
				s.Close(context.Background())
			}
			return nil, fmt.Errorf("failed to set up the audit syslog: %w", err)
		}
		sinks = append(sinks, sink)
	}
	return sinks, nil
}

// shutdownSinks writes what is queued for the audit sinks, waiting at
// most SinkShutdownGrace.
func (sv *run) shutdownSinks(a *log.AuditLog) {
	ctx, cancel := context.WithTimeout(context.Background(), SinkShutdownGrace)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		sv.errLog.Logger().Error("audit sink: shutdown", "err", err)
	}
}

// sameSinks reports whether a and b configure the same audit outputs.
func sameSinks(a, b *Config) bool {
	fileEq := a.AuditFile == b.AuditFile || a.AuditFile != nil && b.AuditFile != nil && *a.AuditFile == *b.AuditFile
	syslogEq := a.AuditSyslog == b.AuditSyslog || a.AuditSyslog != nil && b.AuditSyslog != nil && *a.AuditSyslog == *b.AuditSyslog
	return a.AuditStdoutOff == b.AuditStdoutOff && fileEq && syslogEq
}

// withDefaults returns a copy of s with the nil fields that have a
// default set.
func (s *Server) withDefaults() *Server {
	d := *s
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if d.Stderr == nil {
		d.Stderr = io.Discard
	}
	if d.LookupEnv == nil {
		d.LookupEnv = os.LookupEnv
	}
	return &d
}

// connect opens the key store of c behind a new cache and creates the
// predefined keys.
func (sv *run) connect(ctx context.Context, c *Config) (*cache.Cache[crypto.Key], error) {
	store, err := c.Connect(ctx, sv.errLog.Logger())
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the key store: %w", err)
	}
	if c.HSMCounters != nil {
		sv.metrics.CountHSM(c.HSMCounters)
	}
	keys := cache.New(store, func(_ string, b []byte) (crypto.Key, error) { return crypto.ParseKey(b) }, c.Cache)
	if err := createKeys(ctx, keys, c.Keys, c.Admin); err != nil {
		keys.Close()
		return nil, err
	}
	return keys, nil
}

// reload applies the configuration file again (spec config.md §10): key
// store, admin and policies, route settings, TLS files and log levels,
// and the rate limits (buckets keep their tokens). The listen address stays. Nothing changes unless all of it is valid.
// Policies and identities changed at runtime are gone afterwards, as after
// a restart; policy creation times stay the server's start time.
func (sv *run) reload(ctx context.Context, addr net.Addr) error {
	if sv.ReadConfig == nil {
		return errors.New("this server has no configuration file")
	}
	next, err := sv.ReadConfig()
	if err != nil {
		return err
	}
	next.Addr = sv.config.Addr
	if !sameSinks(sv.started, next) {
		fmt.Fprintln(sv.Stderr, "WARNING: changes of log.audit_stdout, log.audit_file and log.audit_syslog take effect at the next start")
	}
	authorizer, err := auth.New(next.Admin, next.Policies, sv.start)
	if err != nil {
		return err
	}
	conf, proxy, err := tlsConfig(next)
	if err != nil {
		return err
	}
	keys, err := sv.connect(ctx, next)
	if err != nil {
		return err
	}
	// Requests that started before the update keep the old routes'
	// timeouts: the old store stays open until the longest has passed.
	sv.retired = append(sv.retired, sv.keys)
	sv.retireTimer = time.After(sv.srv.MaxRequestDuration() + retireMargin)
	sv.srv.Update(keys, authorizer, next.Routes, next.Deletion)
	sv.srv.SetRateLimits(&next.RateLimits)
	sv.keys, sv.config = keys, next
	sv.current.Store(keys)
	sv.tlsConf.Store(conf)
	sv.srv.SetProxy(proxy)
	sv.errLevel.Set(next.ErrorLevel)
	sv.auditLevel.Set(next.AuditLevel)

	if sv.Started != nil {
		sv.Started(next, addr)
	}
	fmt.Fprintln(sv.Stdout, "=> Reloading configuration after SIGHUP signal completed.")
	return nil
}

// tlsConfig returns the TLS configuration of c and its TLS-proxy mode,
// whose roots are those the TLS layer verifies clients with.
func tlsConfig(c *Config) (*tls.Config, *auth.Proxy, error) {
	conf, err := api.NewTLSConfig(c.TLS, api.SkipAuth(c.Routes))
	if err != nil {
		return nil, nil, err
	}
	proxy, err := api.NewProxy(c.TLS)
	if err != nil {
		return nil, nil, err
	}
	return conf, proxy, nil
}

// createKeys creates the config's predefined keys that do not exist yet.
func createKeys(ctx context.Context, keys *cache.Cache[crypto.Key], names []string, admin kes.Identity) error {
	for _, name := range names {
		_, err := keys.Get(ctx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("failed to create key '%s': %w", name, err)
		}
		key, err := crypto.GenerateKey(crypto.DefaultKeyType(), admin.String(), time.Now().UTC(), nil)
		if err != nil {
			return fmt.Errorf("failed to create key '%s': %w", name, err)
		}
		b, err := key.MarshalBinary()
		key.Destroy()
		if err != nil {
			return fmt.Errorf("failed to create key '%s': %w", name, err)
		}
		if err := keys.Create(ctx, name, b); err != nil && !errors.Is(err, keystore.ErrExists) {
			return fmt.Errorf("failed to create key '%s': %w", name, err)
		}
	}
	return nil
}
