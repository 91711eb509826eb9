package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"path/filepath"
	"time"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/migrate"
)

// migrator is how kes migrate runs the engine of internal/keystore/migrate:
// where it prints and how many keys it handles at once (see
// migrate.Migrator for each field).
type migrator struct {
	out, errOut, live io.Writer
	workers           int
	newTicker         func(d time.Duration) (<-chan time.Time, func())

	// env, if not nil, selects the key store table (Env.KeyStores).
	env *Env
}

// newMigrator returns the migrator of the command line: 8 workers, live
// progress in terminal mode (on stdout, or on stderr if only that is a
// real terminal), upstream's lines otherwise.
func newMigrator(env *Env) *migrator {
	m := &migrator{out: env.Stdout, errOut: env.Stderr, workers: migrate.Workers, env: env}
	if env.IsTerminal != nil && env.IsTerminal() {
		m.live = env.Stdout
		if !isTerminal(env.Stdout) && isTerminal(env.Stderr) {
			m.live = env.Stderr
		}
	}
	return m
}

// run reads the config files of o, connects both keystores and migrates.
func (m *migrator) run(ctx context.Context, o *migrateOptions) error {
	if _, err := path.Match(o.pattern, ""); err != nil {
		return fmt.Errorf("invalid pattern %q: %w", o.pattern, err)
	}
	if a, b := absPath(o.from), absPath(o.to); a == b {
		return errors.New("source and target are the same config file")
	}
	src, err := connectStore(ctx, m.env, m.errOut, "source", o.from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := connectStore(ctx, m.env, m.errOut, "target", o.to)
	if err != nil {
		return err
	}
	defer dst.Close()
	return m.migrate(ctx, src, dst, o)
}

// migrate runs the engine on connected stores.
func (m *migrator) migrate(ctx context.Context, src, dst keystore.Store, o *migrateOptions) error {
	e := &migrate.Migrator{Out: m.out, ErrOut: m.errOut, Live: m.live, Workers: m.workers, NewTicker: m.newTicker}
	return e.Migrate(ctx, src, dst, &migrate.Options{Pattern: o.pattern, Force: o.force, Merge: o.merge, DryRun: o.dryRun})
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// connectStore reads a KES config file and connects its keystore.
func connectStore(ctx context.Context, env *Env, logTo io.Writer, role, file string) (keystore.Store, error) {
	f, err := config.ReadFile(file, configSchema(env))
	if err != nil {
		return nil, fmt.Errorf("reading %s config: %w", role, err)
	}
	s, err := connector(f)(ctx, quietLogger(logTo))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s keystore (%s): %w", role, f.KeyStore.Banner(), err)
	}
	return s, nil
}

// quietLogger is the logger of the key stores migrate connects to: only
// warnings and errors reach the terminal, not routine messages such as a
// Vault login.
func quietLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
