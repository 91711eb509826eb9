// Package migrate copies the stored values of keys from one key store to
// another, unchanged, and reads every copy back to verify it. It takes
// connected stores: reading configuration files is the caller's business.
package migrate

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
)

// Workers is how many keys kes migrate copies (or verifies) at once; enough
// to hide the latency of a network store, few enough not to overload it.
const Workers = 8

// pageSize is how many names are listed from the source at once. At most
// one page of names, and Migrator.Workers values, are held in memory.
const pageSize = keystore.ListPageSize

// maxReportedMismatches bounds the names a failed verification lists.
const maxReportedMismatches = 10

// Options say which keys a migration copies and what it does with keys the
// target has already.
type Options struct {
	Pattern string // shell glob (path.Match); "" means "*"
	Force   bool   // delete an existing target key, then create it
	Merge   bool   // skip names that exist at the target
	DryRun  bool   // list what would be done, change nothing
}

// Migrator copies keys between two stores. Its zero value writes nothing,
// uses one worker and, with Out set, prints plain progress lines (for a
// pipe or file) every second.
type Migrator struct {
	Out    io.Writer // progress lines, summary, dry-run listing; nil: none
	ErrOut io.Writer // names that failed verification; nil: none

	// Live, if not nil, is a terminal: progress is a counter and bar
	// redrawn in place on it instead of upstream's lines on Out.
	Live io.Writer

	Workers int // keys handled at once; <= 0 means 1

	// NewTicker returns the progress ticker and its stop function. Nil
	// means time.NewTicker.
	NewTicker func(d time.Duration) (<-chan time.Time, func())
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

// Migrate copies the keys of src matching o.Pattern to dst and verifies
// them, or with o.DryRun only lists what it would do. A key the target has
// already stops it with a *KeyExistsError unless o.Merge or o.Force; a
// copy that reads back differently makes it fail with a *VerifyError.
func (m *Migrator) Migrate(ctx context.Context, src, dst keystore.Store, o *Options) error {
	m = m.withDefaults()
	pattern := o.Pattern
	if pattern == "" {
		pattern = "*"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("invalid pattern %q: %w", pattern, err)
	}
	if o.DryRun {
		return m.dryRun(ctx, src, dst, pattern, o)
	}
	p := m.startProgress("Migrating keys:")
	if m.Live == nil {
		fmt.Fprintln(m.Out, "Starting key migration:")
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
		fmt.Fprintln(m.Out, "Migration succeeded! No keys migrated.")
	} else {
		fmt.Fprintf(m.Out, "Migrated %6d keys successfully!\n", t.migrated())
	}
	if m.Live != nil {
		fmt.Fprintf(m.Out, "Copied %d, overwrote %d, skipped %d existing keys; verified %d keys.\n",
			t.copied, t.overwritten, t.skipped, len(migrated))
	}
	return nil
}

// withDefaults returns a copy of m with nil writers discarding.
func (m *Migrator) withDefaults() *Migrator {
	d := *m
	if d.Out == nil {
		d.Out = io.Discard
	}
	if d.ErrOut == nil {
		d.ErrOut = io.Discard
	}
	return &d
}

// copyKey copies the stored value of name from src to dst as o says.
func copyKey(ctx context.Context, src, dst keystore.Store, name string, o *Options) (keyAction, error) {
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
	case o.Merge:
		return actSkip, nil
	case !o.Force:
		return 0, &KeyExistsError{Name: name}
	}
	if r, ok := dst.(keystore.Overwriter); ok {
		// Atomically, so that no crash leaves the name empty: a
		// migration onto the same store (re-wrapping it with an HSM,
		// docs/hsm.md) would otherwise lose the key it deleted. Only
		// where the replaced value is what every reader reads: on Vault
		// K/V v2 upstream would still read the old one.
		return replaceKey(ctx, dst, r, name, v)
	}
	if err := dst.Delete(ctx, name); err != nil {
		return 0, fmt.Errorf("deleting key %q at the target: %w", name, err)
	}
	if err := dst.Create(ctx, name, v); err != nil {
		return 0, fmt.Errorf("creating key %q at the target: %w", name, err)
	}
	return actOverwrite, nil
}

// replaceKey overwrites the value of name at dst with v by compare-and-swap
// from the value read just before.
func replaceKey(ctx context.Context, dst keystore.Store, r keystore.Replacer, name string, v []byte) (keyAction, error) {
	old, err := dst.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("reading key %q at the target: %w", name, err)
	}
	defer clear(old)
	if err := r.Replace(ctx, name, old, v); err != nil {
		return 0, fmt.Errorf("replacing key %q at the target: %w", name, err)
	}
	return actOverwrite, nil
}

// KeyExistsError stops a migration without Merge or Force at a key the
// target has already. It matches keystore.ErrExists.
type KeyExistsError struct{ Name string }

func (e *KeyExistsError) Error() string {
	return fmt.Sprintf("key %q already exists at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys", e.Name)
}

func (e *KeyExistsError) Unwrap() error { return keystore.ErrExists }

// eachPage lists the names of src that match pattern, page by page, runs
// do for each name on up to m.Workers goroutines and then calls done for
// each name of the page in name order. It stops at the first error, in
// name order, after the page's work in flight has finished.
func (m *Migrator) eachPage(ctx context.Context, src keystore.Store, pattern string, p *progress,
	do func(ctx context.Context, name string) (keyAction, error), done func(name string, a keyAction)) error {
	prefix := literalPrefix(pattern)
	var continueAt string
	for {
		names, next, err := src.List(ctx, prefix, continueAt, pageSize)
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

// parallel runs do for each name on up to m.Workers goroutines, redrawing
// p while it waits. It returns the actions of the names before the first
// (in name order) that failed, and that name's error.
func (m *Migrator) parallel(ctx context.Context, names []string, p *progress,
	do func(ctx context.Context, name string) (keyAction, error)) ([]keyAction, error) {
	if len(names) == 0 {
		return nil, nil
	}
	actions := make([]keyAction, len(names))
	errs := make([]error, len(names))
	jobs := make(chan int)
	workers := min(max(m.Workers, 1), len(names))
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
// byte for byte. It reports each mismatch (names only) on m.ErrOut.
func (m *Migrator) verify(ctx context.Context, src, dst keystore.Store, names []string) error {
	p := m.startVerifyProgress(len(names))
	var bad []string
	var done int
	for start := 0; start < len(names); start += pageSize {
		page := names[start:min(start+pageSize, len(names))]
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
		fmt.Fprintf(m.ErrOut, "verification failed: key %q differs at the target\n", name)
	}
	if len(bad) > maxReportedMismatches {
		fmt.Fprintf(m.ErrOut, "verification failed: and %d more keys\n", len(bad)-maxReportedMismatches)
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
func (m *Migrator) dryRun(ctx context.Context, src, dst keystore.Store, pattern string, o *Options) error {
	var t tally
	err := m.eachPage(ctx, src, pattern, m.startProgress(""), func(ctx context.Context, name string) (keyAction, error) {
		v, err := dst.Get(ctx, name)
		clear(v)
		switch {
		case errors.Is(err, keystore.ErrNotFound):
			return actCopy, nil
		case err != nil:
			return 0, fmt.Errorf("checking key %q at the target: %w", name, err)
		case o.Merge:
			return actSkip, nil
		case o.Force:
			return actOverwrite, nil
		default:
			return actConflict, nil
		}
	}, func(name string, a keyAction) {
		verb := [...]string{actCopy: "copy", actSkip: "skip", actOverwrite: "overwrite", actConflict: "conflict"}[a]
		fmt.Fprintf(m.Out, "%-9s %s\n", verb, name)
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
	fmt.Fprintf(m.Out, "Dry run: %d keys would be copied, %d overwritten, %d skipped. Nothing was changed.\n",
		t.copied, t.overwritten, t.skipped)
	if t.conflicts > 0 {
		return fmt.Errorf("%d keys already exist at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys: %w",
			t.conflicts, kes.ErrKeyExists)
	}
	return nil
}
