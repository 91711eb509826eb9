package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/stores"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/server"
)

func newServerCmd(env *Env) *cobra.Command {
	var (
		addr, configFile string
		dev              bool
		deprecated       struct{ key, cert, auth, root string }
		legacyBool       struct{ mlock, quiet bool }
	)
	cmd := &cobra.Command{
		Use:   "server [--config FILE] [--addr ADDR] [--dev]",
		Short: "Start a KES server",
		Long: `Start a KES server.

  --config FILE  the server configuration (YAML); required unless --dev
  --addr ADDR    the listen address [ip]:port; overrides the config's address
  --dev          a development server: in-memory keys, a throw-away TLS
                 certificate and admin API key, listening on 127.0.0.1:7373`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("too many arguments. See 'kes server --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []string{"key", "cert", "auth"} {
				if cmd.Flags().Changed(f) {
					fmt.Fprintf(env.Stderr, "WARNING: '--%s' flag is deprecated and no longer honored. Specify it in the config file\n", f)
				}
			}
			if dev {
				if configFile != "" {
					return errors.New("'--config' flag is not supported in development mode")
				}
				return runDevServer(cmd.Context(), env, addr)
			}
			if configFile == "" {
				return errors.New("no config file specified. Use '--config' or '--dev'")
			}
			return runServer(cmd.Context(), env, configFile, addr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "listen address [ip]:port")
	f.StringVar(&configFile, "config", "", "path to the server configuration file")
	f.BoolVar(&dev, "dev", false, "start a development server")
	f.StringVar(&deprecated.key, "key", "", "deprecated, ignored")
	f.StringVar(&deprecated.cert, "cert", "", "deprecated, ignored")
	f.StringVar(&deprecated.auth, "auth", "", "deprecated, ignored")
	f.StringVar(&deprecated.root, "root", "", "deprecated, ignored")
	f.BoolVar(&legacyBool.mlock, "mlock", false, "deprecated, ignored: key bytes are always in locked memory")
	f.BoolVar(&legacyBool.quiet, "quiet", false, "deprecated, ignored")
	for _, name := range []string{"key", "cert", "auth", "root", "mlock", "quiet"} {
		f.MarkHidden(name)
	}
	return cmd
}

func runServer(ctx context.Context, env *Env, file, addr string) error {
	c, err := readSetup(env, file)
	if err != nil {
		return err
	}
	if addr != "" {
		c.Addr = addr
	}
	return serve(ctx, env, c, func() (*server.Config, error) { return readSetup(env, file) }, "")
}

// serve runs a server with c until ctx is done, printing the banner at
// start and after every reload. reread reads the configuration again for
// a SIGHUP (nil: the server cannot reload); apiKey is the dev-mode admin
// API key the banner prints.
func serve(ctx context.Context, env *Env, c *server.Config, reread func() (*server.Config, error), apiKey string) error {
	// No core dump, no ptrace or /proc/<pid>/mem by other processes of the
	// user: the key bytes themselves are in locked memory (banner Memory).
	dumpErr := crypto.ProtectProcess()
	s := &server.Server{
		Stdout:     env.Stdout,
		Stderr:     env.Stderr,
		LookupEnv:  env.LookupEnv,
		Reload:     env.Reload,
		ReadConfig: reread,
		Started: func(c *server.Config, addr net.Addr) {
			printBanner(env.Stdout, c, apiKey, addr, dumpErr, memoryLimit(env))
		},
	}
	return s.Run(ctx, c)
}

// configSchema is what a server configuration file may name: every key
// store of the table (env.KeyStores, or stores.All if nil) and every route
// of the API's.
func configSchema(env *Env) *config.Schema {
	table := stores.All
	if env != nil && env.KeyStores != nil {
		table = env.KeyStores
	}
	return &config.Schema{KeyStores: table, Routes: api.Paths(), HSM: stores.DecodeHSM}
}

// connector returns the function that connects the key store of f,
// wrapped by its HSM if f has an hsm section.
func connector(f *config.File) func(context.Context, *slog.Logger) (keystore.Store, error) {
	if f.HSM == nil {
		return f.KeyStore.Connect
	}
	return func(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
		s, err := f.KeyStore.Connect(ctx, logger)
		if err != nil {
			return nil, err
		}
		return f.HSM.Wrap(ctx, s, logger)
	}
}

// serverConnector is connector plus the HSM marker (docs/hsm.md): with an
// hsm section the store is marked as wrapped; without one a store that
// holds the wrapped marker is refused, so that no key is stored in the
// clear beside wrapped ones. kes migrate uses connector: it copies the
// marker like a key.
func serverConnector(f *config.File) func(context.Context, *slog.Logger) (keystore.Store, error) {
	connect := connector(f)
	return func(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
		s, err := connect(ctx, logger)
		if err != nil {
			return nil, err
		}
		// A store that does not answer must not hold the start forever.
		mctx, cancel := context.WithTimeout(ctx, markerTimeout)
		defer cancel()
		if f.HSM != nil {
			err = hsm.Mark(mctx, s)
		} else if err = hsm.CheckMarker(mctx, s); err != nil && !errors.Is(err, hsm.ErrMarked) {
			// A store that cannot be read now (unreachable) starts as
			// before: the cache serves what it can and the status says
			// unreachable. Only a marker found refuses the store.
			logger.Warn("cannot check the key store for HSM-wrapped keys", "err", err)
			err = nil
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
}

// markerTimeout bounds the store calls of the HSM marker at start.
const markerTimeout = 15 * time.Second

// readSetup reads a config file into a server configuration and prints
// the warnings about keys it ignores.
func readSetup(env *Env, file string) (*server.Config, error) {
	cfg, err := config.ReadFile(file, configSchema(env))
	if err != nil {
		return nil, err
	}
	for _, n := range cfg.Notices {
		fmt.Fprintf(env.Stderr, "WARNING: %s\n", n)
	}
	if mode, exposed := config.ExposedSecrets(file, cfg); exposed {
		// The server's error log does not exist yet: the same format, at
		// the configured level.
		log.NewErrorLog(env.Stderr, cfg.Log.Error, nil).Logger().Error(
			"the configuration file holds secrets and is readable by other users",
			"file", file, "mode", fmt.Sprintf("%04o", mode))
	}
	c := &server.Config{
		Addr: cfg.Address,
		TLS: &api.TLSConfig{
			CertFile:      cfg.TLS.CertFile,
			KeyFile:       cfg.TLS.KeyFile,
			Password:      cfg.TLS.Password,
			VerifyClients: cfg.TLS.Auth == config.AuthOn,
			CAPath:        cfg.TLS.CAPath,

			ProxyIdentities: cfg.TLS.Proxy.Identities,
			ProxyHeader:     cfg.TLS.Proxy.CertHeader,
		},
		Admin:      cfg.Admin,
		Policies:   cfg.Policies,
		Routes:     cfg.API,
		RateLimits: cfg.RateLimits,
		Cache:      cfg.Cache,
		Connect:    serverConnector(cfg),
		Banner:     cfg.KeyStore.Banner(),
		Keys:       cfg.Keys,
		Deletion:   api.Deletion{Retention: cfg.KeyDeletion.Retention, Protect: cfg.KeyDeletion.Protect},
		ErrorLevel: cfg.Log.Error,
		AuditLevel: cfg.Log.Audit,

		AuditStdoutOff: cfg.Log.AuditStdoutOff,
		AuditFile:      cfg.Log.AuditFile,
		AuditSyslog:    cfg.Log.AuditSyslog,
	}
	if cfg.HSM != nil {
		c.HSM, c.HSMCounters = cfg.HSM.Banner(), hsm.Counters
	}
	return c, nil
}
