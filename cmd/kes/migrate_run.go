package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// migrator copies keys between two stores. Its zero value prints plain
// progress lines (for a pipe or file) every second and uses one worker.
type migrator struct {
	out    io.Writer // progress lines, summary, dry-run listing
	errOut io.Writer // names that failed verification

	// live, if not nil, is a terminal: progress is a counter and bar
	// redrawn in place on it instead of upstream's lines on out.
	live io.Writer

	workers int // keys handled at once; <= 0 means 1

	// newTicker returns the progress ticker and its stop function. Nil
	// means time.NewTicker.
	newTicker func(d time.Duration) (<-chan time.Time, func())

	// env, if not nil, selects the key store table (Env.KeyStores).
	env *Env
}

// keyAction is what happened, or would happen, to one key.
type keyAction int

const (
	actCopy      keyAction = iota // created at the target
	actSkip                       // exists at the target, --merge
	actOverwrite                  // existed at the target, --force
	actConflict                   // exists at the target (dry run only)
)

// tally counts the outcomes of a run.
type tally struct {
	copied, skipped, overwritten, conflicts int
}

func (t *tally) migrated() int { return t.copied + t.overwritten }

// newMigrator returns the migrator of the command line: 8 workers, live
// progress in terminal mode (on stdout, or on stderr if only that is a
// real terminal), upstream's lines otherwise.
func newMigrator(env *Env) *migrator {
	m := &migrator{out: env.Stdout, errOut: env.Stderr, workers: migrateWorkers, env: env}
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

// migrate copies the keys of src matching o.pattern to dst and verifies
// them, or with o.dryRun only lists what it would do.
func (m *migrator) migrate(ctx context.Context, src, dst keystore.Store, o *migrateOptions) error {
	pattern := o.pattern
	if pattern == "" {
		pattern = "*"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("invalid pattern %q: %w", pattern, err)
	}
	if o.dryRun {
		return m.dryRun(ctx, src, dst, pattern, o)
	}
	p := m.startProgress("Migrating keys:")
	if m.live == nil {
		fmt.Fprintln(m.out, "Starting key migration:")
	}
	var (
		t        tally
		migrated []string // names to verify; names only, never values
	)
	err := m.eachPage(ctx, src, pattern, p, func(ctx context.Context, name string) (keyAction, error) {
		return copyKey(ctx, src, dst, name, o)
	}, func(name string, a keyAction) {
		switch a {
		case actCopy:
			t.copied++
		case actSkip:
			t.skipped++
		case actOverwrite:
			t.overwritten++
		}
		if a != actSkip {
			migrated = append(migrated, name)
		}
		p.set(t.migrated(), 0)
	})
	p.stop()
	if err != nil {
		return err
	}
	if err := m.verify(ctx, src, dst, migrated); err != nil {
		return err
	}
	if t.migrated() == 0 {
		fmt.Fprintln(m.out, "Migration succeeded! No keys migrated.")
	} else {
		fmt.Fprintf(m.out, "Migrated %6d keys successfully!\n", t.migrated())
	}
	if m.live != nil {
		fmt.Fprintf(m.out, "Copied %d, overwrote %d, skipped %d existing keys; verified %d keys.\n",
			t.copied, t.overwritten, t.skipped, len(migrated))
	}
	return nil
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
	s, err := f.KeyStore.Connect(ctx, quietLogger(logTo))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s keystore (%s): %w", role, f.KeyStore.Banner(), err)
	}
	return s, nil
}

// copyKey copies the stored value of name from src to dst as o says.
func copyKey(ctx context.Context, src, dst keystore.Store, name string, o *migrateOptions) (keyAction, error) {
	v, err := src.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("reading key %q from the source: %w", name, err)
	}
	defer clear(v)
	err = dst.Create(ctx, name, v)
	switch {
	case err == nil:
		return actCopy, nil
	case !errors.Is(err, keystore.ErrExists):
		return 0, fmt.Errorf("creating key %q at the target: %w", name, err)
	case o.merge:
		return actSkip, nil
	case !o.force:
		return 0, &keyExistsError{Name: name}
	}
	if err := dst.Delete(ctx, name); err != nil {
		return 0, fmt.Errorf("deleting key %q at the target: %w", name, err)
	}
	if err := dst.Create(ctx, name, v); err != nil {
		return 0, fmt.Errorf("creating key %q at the target: %w", name, err)
	}
	return actOverwrite, nil
}

// keyExistsError stops a migration without --merge or --force at a key
// the target has already. It matches keystore.ErrExists.
type keyExistsError struct{ Name string }

func (e *keyExistsError) Error() string {
	return fmt.Sprintf("key %q already exists at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys", e.Name)
}

func (e *keyExistsError) Unwrap() error { return keystore.ErrExists }

// eachPage lists the names of src that match pattern, page by page, runs
// do for each name on up to m.workers goroutines and then calls done for
// each name of the page in name order. It stops at the first error, in
// name order, after the page's work in flight has finished.
func (m *migrator) eachPage(ctx context.Context, src keystore.Store, pattern string, p *progress,
	do func(ctx context.Context, name string) (keyAction, error), done func(name string, a keyAction)) error {
	prefix := literalPrefix(pattern)
	var continueAt string
	for {
		names, next, err := src.List(ctx, prefix, continueAt, migratePageSize)
		if err != nil {
			return fmt.Errorf("listing keys of the source: %w", err)
		}
		var page []string
		for _, name := range names {
			if ok, _ := path.Match(pattern, name); ok {
				page = append(page, name)
			}
		}
		actions, err := m.parallel(ctx, page, p, do)
		for i, a := range actions {
			done(page[i], a)
		}
		if err != nil {
			return err
		}
		if next == "" || next <= continueAt {
			return nil
		}
		continueAt = next
	}
}

// parallel runs do for each name on up to m.workers goroutines, redrawing
// p while it waits. It returns the actions of the names before the first
// (in name order) that failed, and that name's error.
func (m *migrator) parallel(ctx context.Context, names []string, p *progress,
	do func(ctx context.Context, name string) (keyAction, error)) ([]keyAction, error) {
	if len(names) == 0 {
		return nil, nil
	}
	actions := make([]keyAction, len(names))
	errs := make([]error, len(names))
	jobs := make(chan int)
	workers := min(max(m.workers, 1), len(names))
	var (
		wg     sync.WaitGroup
		failed atomic.Bool // stop handing out names after an error
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				if actions[i], errs[i] = do(ctx, names[i]); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	i := 0
	in := jobs
	for in != nil || finished != nil {
		if in != nil && (failed.Load() || ctx.Err() != nil) {
			close(jobs)
			in = nil
		}
		select {
		case in <- i:
			if i++; i == len(names) {
				close(jobs)
				in = nil
			}
		case <-finished:
			finished = nil
		case <-p.tick:
			p.draw()
		case <-ctx.Done():
			if in != nil {
				close(jobs)
				in = nil
			}
		}
	}
	for j, err := range errs[:i] {
		if err != nil {
			return actions[:j], err
		}
	}
	if i < len(names) {
		return actions[:i], ctx.Err()
	}
	return actions, nil
}

// literalPrefix returns the part of a glob before its first meta
// character: every matching name starts with it.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// actMismatch is the verification result of a key whose value at the
// target differs from the source, or is missing.
const actMismatch keyAction = -1

// verify reads every name back from dst and compares its value with src's,
// byte for byte. It reports each mismatch (names only) on m.errOut.
func (m *migrator) verify(ctx context.Context, src, dst keystore.Store, names []string) error {
	p := m.startVerifyProgress(len(names))
	var bad []string
	var done int
	for start := 0; start < len(names); start += migratePageSize {
		page := names[start:min(start+migratePageSize, len(names))]
		actions, err := m.parallel(ctx, page, p, func(ctx context.Context, name string) (keyAction, error) {
			return verifyKey(ctx, src, dst, name)
		})
		for i, a := range actions {
			if a == actMismatch {
				bad = append(bad, page[i])
			}
		}
		done += len(actions)
		p.set(done, len(names))
		if err != nil {
			p.stop()
			return err
		}
	}
	p.stop()
	if len(bad) == 0 {
		return nil
	}
	for _, name := range bad[:min(len(bad), maxReportedMismatches)] {
		fmt.Fprintf(m.errOut, "verification failed: key %q differs at the target\n", name)
	}
	if len(bad) > maxReportedMismatches {
		fmt.Fprintf(m.errOut, "verification failed: and %d more keys\n", len(bad)-maxReportedMismatches)
	}
	return &VerifyError{Mismatches: len(bad), Verified: len(names)}
}

// VerifyError reports that migrated keys read back from the target differ
// from the source (or are missing there).
type VerifyError struct {
	Mismatches int // keys that differ
	Verified   int // keys read back
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verification failed: %d of %d migrated keys differ between source and target", e.Mismatches, e.Verified)
}

// verifyKey compares the value of name at src and dst.
func verifyKey(ctx context.Context, src, dst keystore.Store, name string) (keyAction, error) {
	want, err := src.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("verifying key %q: reading the source: %w", name, err)
	}
	defer clear(want)
	got, err := dst.Get(ctx, name)
	if errors.Is(err, keystore.ErrNotFound) {
		return actMismatch, nil
	}
	if err != nil {
		return 0, fmt.Errorf("verifying key %q: reading the target: %w", name, err)
	}
	defer clear(got)
	// Stored values hold key material: compare in constant time.
	if len(got) != len(want) || subtle.ConstantTimeCompare(got, want) != 1 {
		return actMismatch, nil
	}
	return actCopy, nil
}

// dryRun lists what a migration would do, in name order, without writing.
func (m *migrator) dryRun(ctx context.Context, src, dst keystore.Store, pattern string, o *migrateOptions) error {
	var t tally
	err := m.eachPage(ctx, src, pattern, m.startProgress(""), func(ctx context.Context, name string) (keyAction, error) {
		v, err := dst.Get(ctx, name)
		clear(v)
		switch {
		case errors.Is(err, keystore.ErrNotFound):
			return actCopy, nil
		case err != nil:
			return 0, fmt.Errorf("checking key %q at the target: %w", name, err)
		case o.merge:
			return actSkip, nil
		case o.force:
			return actOverwrite, nil
		default:
			return actConflict, nil
		}
	}, func(name string, a keyAction) {
		verb := [...]string{actCopy: "copy", actSkip: "skip", actOverwrite: "overwrite", actConflict: "conflict"}[a]
		fmt.Fprintf(m.out, "%-9s %s\n", verb, name)
		switch a {
		case actCopy:
			t.copied++
		case actSkip:
			t.skipped++
		case actOverwrite:
			t.overwritten++
		case actConflict:
			t.conflicts++
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.out, "Dry run: %d keys would be copied, %d overwritten, %d skipped. Nothing was changed.\n",
		t.copied, t.overwritten, t.skipped)
	if t.conflicts > 0 {
		return fmt.Errorf("%d keys already exist at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys: %w",
			t.conflicts, kes.ErrKeyExists)
	}
	return nil
}
