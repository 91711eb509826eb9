package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
	"github.com/openkes/kes/internal/version"
)

// gcPercent is the server's GOGC unless the environment sets one. A key
// server keeps a live heap of a few MB but allocates on every request, so
// the default 100 makes it collect very often: at 200, CPU per request
// under load drops by about 10% (kesload) for about 4 MB more RSS under
// load; idle RSS does not change.
const gcPercent = 200

// tlsReloadInterval is how often the TLS files are read again, as upstream.
const tlsReloadInterval = 15 * time.Minute

// server is a running kes server: what a reload replaces sits in srv (key
// store, policies, routes), tlsConf and the log levels.
type server struct {
	env        *Env
	start      time.Time
	srv        *api.Server
	keys       *cache.Cache[crypto.Key]
	tlsConf    atomic.Pointer[tls.Config]
	errLevel   *slog.LevelVar
	auditLevel *slog.LevelVar
	errLog     *log.ErrorLog
	setup      *serverSetup

	// retired are the key caches that reloads replaced. Requests that
	// started before a reload may still use them, so they are closed once
	// the longest of those requests has passed (retireTimer), or when the
	// server stops.
	retired     []*cache.Cache[crypto.Key]
	retireTimer <-chan time.Time
}

// retireMargin is how much longer than the longest request of the replaced
// configuration (api.Server.MaxRequestDuration) a replaced key store stays
// open for the requests in flight.
const retireMargin = 5 * time.Second

// closeRetired closes the key caches replaced by reloads.
func (sv *server) closeRetired() {
	for _, c := range sv.retired {
		c.Close()
	}
	sv.retired, sv.retireTimer = nil, nil
}

// serve runs a server until ctx is done. SIGHUP (or env.Reload) reloads
// the configuration.
func serve(ctx context.Context, env *Env, s *serverSetup) error {
	if _, ok := env.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
	sv := &server{env: env, start: time.Now(), setup: s, errLevel: new(slog.LevelVar), auditLevel: new(slog.LevelVar)}
	sv.errLevel.Set(s.ErrorLvl)
	sv.auditLevel.Set(s.AuditLvl)
	// The logs count into the metrics from their first record on: the key
	// store logs its login before the API server exists.
	m := metrics.New(sv.start)
	sv.errLog = log.NewErrorLog(env.Stderr, sv.errLevel, m.ErrorEvent)
	auditLog := log.NewAuditLog(env.Stdout, sv.auditLevel, m.AuditEvent)

	authorizer, err := auth.New(s.Admin, s.Policies, sv.start)
	if err != nil {
		return err
	}
	keys, err := sv.connect(ctx, s)
	if err != nil {
		return err
	}
	defer func() {
		sv.keys.Close()
		sv.closeRetired()
	}()
	sv.keys = keys

	build := version.Get()
	sv.srv, err = api.New(&api.Config{
		Keys:      keys,
		Auth:      authorizer,
		ErrorLog:  sv.errLog,
		AuditLog:  auditLog,
		Metrics:   m,
		Routes:    s.Routes,
		Version:   build.Version,
		Commit:    build.Commit,
		StartTime: sv.start,
	})
	if err != nil {
		return err
	}
	conf, err := api.NewTLSConfig(s.TLS, api.SkipAuth(s.Routes))
	if err != nil {
		return err
	}
	sv.tlsConf.Store(conf)

	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	httpSrv := sv.srv.HTTPServer(s.Addr, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: conf.NextProtos,
		// Every handshake uses the current configuration, so a reload
		// changes certificates and client-auth mode for new connections.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return sv.tlsConf.Load(), nil },
	})
	printBanner(env.Stdout, s, ln.Addr(), sv.errLevel.Level(), sv.auditLevel.Level())

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.ServeTLS(ln, "", "") }()

	reload := env.Reload
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
			fmt.Fprintln(env.Stderr, "SIGHUP signal received. Reloading configuration...")
			if err := sv.reload(ctx, ln.Addr()); err != nil {
				fmt.Fprintf(env.Stderr, "Failed to reload server config: %v\n", err)
			}
		case <-sv.retireTimer:
			sv.closeRetired()
		case <-tlsTicker.C:
			if conf, err := api.NewTLSConfig(sv.setup.TLS, api.SkipAuth(sv.setup.Routes)); err != nil {
				fmt.Fprintf(env.Stderr, "Failed to reload TLS configuration: %v\n", err)
			} else {
				sv.tlsConf.Store(conf)
			}
		case <-ctx.Done():
			fmt.Fprintln(env.Stdout, "\n=> Stopping server... Goodbye.")
			shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
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

// connect opens the key store of s behind a new cache and creates the
// predefined keys.
func (sv *server) connect(ctx context.Context, s *serverSetup) (*cache.Cache[crypto.Key], error) {
	store, err := s.Connect(ctx, sv.errLog.Logger())
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the key store: %w", err)
	}
	keys := cache.New(store, func(_ string, b []byte) (crypto.Key, error) { return crypto.ParseKey(b) }, s.Cache)
	if err := createKeys(ctx, keys, s.Keys, s.Admin); err != nil {
		keys.Close()
		return nil, err
	}
	return keys, nil
}

// reload applies the configuration file again (spec config.md §10): key
// store, admin and policies, route settings, TLS files and log levels. The
// listen address stays. Nothing changes unless all of it is valid.
// Policies and identities changed at runtime are gone afterwards, as after
// a restart; policy creation times stay the server's start time.
func (sv *server) reload(ctx context.Context, addr net.Addr) error {
	if sv.setup.Reload == nil {
		return errors.New("this server has no configuration file")
	}
	next, err := sv.setup.Reload()
	if err != nil {
		return err
	}
	next.Addr, next.APIKey, next.Reload = sv.setup.Addr, sv.setup.APIKey, sv.setup.Reload
	authorizer, err := auth.New(next.Admin, next.Policies, sv.start)
	if err != nil {
		return err
	}
	conf, err := api.NewTLSConfig(next.TLS, api.SkipAuth(next.Routes))
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
	sv.srv.Update(keys, authorizer, next.Routes)
	sv.keys, sv.setup = keys, next
	sv.tlsConf.Store(conf)
	sv.errLevel.Set(next.ErrorLvl)
	sv.auditLevel.Set(next.AuditLvl)

	printBanner(sv.env.Stdout, next, addr, sv.errLevel.Level(), sv.auditLevel.Level())
	fmt.Fprintln(sv.env.Stdout, "=> Reloading configuration after SIGHUP signal completed.")
	return nil
}
