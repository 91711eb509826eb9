package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// index is the sorted list of the key names in the directory, kept in
// memory so that a List page costs a binary search and the names it
// returns, not a pass over the directory (issue 12: with a million keys,
// every page re-read the whole directory and listing all was quadratic).
//
// Layout, a few bytes per key beyond its name: the names of the last
// directory pass (the base) lie back to back in one byte slice, and a
// sorted slice of 8-byte entries (offset<<8 | length) orders them. Creates
// and deletes of this process go to a small sorted slice of added names and
// a set of deleted base names, merged into a new base once they grow past a
// fraction of it, so that a create costs O(log n) plus an amortized copy.
//
// Other processes (another server sharing the directory, an operator
// copying files in) change the directory behind the index. List stats the
// directory first; if its modification time or identity differs from the
// last pass, or the last pass saw a modification too recent to trust the
// time's granularity, the directory is read again, at most once per ten
// times the duration of the last pass, so that passes take at most a tenth
// of a core however often List is called. A listing can therefore miss
// another process's change for that long (milliseconds with a thousand
// keys, about 15 s with a million here); this process's own changes show
// at once. Get, Create and Delete never use the index.
//
// The index is built by the first List, not by New: a server that never
// lists holds no index.
type index struct {
	// scanMu is held by the List that checks and rebuilds the index, so
	// that one pass runs at a time; mu guards the fields below and is held
	// only briefly.
	scanMu sync.Mutex

	mu    sync.Mutex
	built bool
	arena []byte              // names of the base, back to back
	base  []uint64            // sorted by name: offset<<8 | length in arena
	adds  []string            // sorted; created since the pass, not in base
	dels  map[string]struct{} // base names deleted since the pass

	scanning bool     // a pass runs; own changes also go to pending
	pending  []change // own changes made during the pass

	// Written only under scanMu.
	stamp    iofs.FileInfo // the directory as the last pass saw it
	racy     bool          // its mtime was too recent to trust
	scanned  time.Time     // when the last pass began
	scanCost time.Duration // how long it took
}

// change is a create (add) or delete of this process.
type change struct {
	name string
	add  bool
}

// racyWindow: a pass that began less than this after the directory's last
// modification cannot tell from the mtime alone whether a change in the
// same clock tick came after it.
const racyWindow = time.Second

// added records that this process created name.
func (x *index) added(name string) { x.record(change{name: name, add: true}) }

// removed records that this process deleted name.
func (x *index) removed(name string) { x.record(change{name: name}) }

func (x *index) record(c change) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.scanning {
		x.pending = append(x.pending, c)
	}
	if x.built {
		x.apply(c)
	}
}

// apply applies c to the index; x.mu is held.
func (x *index) apply(c change) {
	_, inBase := x.searchBase(c.name)
	j, inAdds := slices.BinarySearch(x.adds, c.name)
	switch {
	case c.add && inBase:
		delete(x.dels, c.name)
	case c.add && !inAdds:
		x.adds = slices.Insert(x.adds, j, strings.Clone(c.name))
	case !c.add && inAdds:
		x.adds = slices.Delete(x.adds, j, j+1)
	case !c.add && inBase:
		if x.dels == nil {
			x.dels = make(map[string]struct{})
		}
		x.dels[strings.Clone(c.name)] = struct{}{}
	}
	if len(x.adds)+len(x.dels) > 1024+len(x.base)/32 {
		x.merge()
	}
}

// name returns the name of base entry e.
func (x *index) name(e uint64) []byte {
	off, n := e>>8, e&0xff
	return x.arena[off : off+n]
}

// searchBase returns the position of the first base name >= name and
// whether it is name.
func (x *index) searchBase(name string) (int, bool) {
	return slices.BinarySearchFunc(x.base, name, func(e uint64, name string) int {
		return strings.Compare(string(x.name(e)), name)
	})
}

// merge folds adds and dels into a new base; x.mu is held.
func (x *index) merge() {
	var b builder
	b.arena = make([]byte, 0, len(x.arena))
	b.ents = make([]uint64, 0, len(x.base)+len(x.adds))
	x.each("", func(name []byte) bool { b.add(name); return true })
	x.arena, x.base = b.arena, b.ents // in order: no sort needed
	x.adds, x.dels = nil, nil
}

// each calls fn with the names >= start in order until fn returns false;
// x.mu is held. The slice passed to fn is valid only during the call.
func (x *index) each(start string, fn func(name []byte) bool) {
	i, _ := x.searchBase(start)
	j, _ := slices.BinarySearch(x.adds, start)
	for i < len(x.base) || j < len(x.adds) {
		var name []byte
		if j == len(x.adds) || (i < len(x.base) && string(x.name(x.base[i])) < x.adds[j]) {
			name = x.name(x.base[i])
			i++
			if _, gone := x.dels[string(name)]; gone {
				continue
			}
		} else {
			name = []byte(x.adds[j])
			j++
		}
		if !fn(name) {
			return
		}
	}
}

// page answers a List call from the index for n > 0; see [Store.List].
func (x *index) page(prefix, continueAt string, n int) ([]string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var names []string
	var next string
	x.each(max(prefix, continueAt), func(name []byte) bool {
		if !bytes.HasPrefix(name, []byte(prefix)) {
			return false // sorted: no later name has the prefix either
		}
		if len(names) == n {
			next = string(name)
			return false
		}
		names = append(names, string(name))
		return true
	})
	return names, next
}

// refresh makes the index reflect the directory (see index); x.scanMu is
// held.
func (x *index) refresh(ctx context.Context, root *os.Root) error {
	fi, err := root.Stat(".")
	if err != nil {
		return fmt.Errorf("fs: list: %w", err)
	}
	x.mu.Lock()
	built := x.built
	x.mu.Unlock()
	if built {
		changed := x.racy || !fi.ModTime().Equal(x.stamp.ModTime()) || !os.SameFile(fi, x.stamp)
		if !changed || time.Since(x.scanned) < 10*x.scanCost {
			return nil
		}
	}
	return x.scan(ctx, root, fi)
}

// scan reads the directory (described by fi, stat'ed before) and replaces
// the index with what it holds, then applies the changes this process made
// meanwhile; x.scanMu is held.
func (x *index) scan(ctx context.Context, root *os.Root, fi iofs.FileInfo) error {
	start := time.Now()
	x.mu.Lock()
	x.scanning, x.pending = true, nil
	x.mu.Unlock()
	b, err := read(ctx, root)
	x.mu.Lock()
	defer x.mu.Unlock()
	pending := x.pending
	x.scanning, x.pending = false, nil
	if err != nil {
		return err
	}
	slices.SortFunc(b.ents, func(e, f uint64) int {
		return bytes.Compare(b.arena[e>>8:e>>8+e&0xff], b.arena[f>>8:f>>8+f&0xff])
	})
	x.arena, x.base, x.adds, x.dels, x.built = b.arena, b.ents, nil, nil, true
	for _, c := range pending {
		x.apply(c)
	}
	x.stamp, x.scanned, x.scanCost = fi, start, time.Since(start)
	x.racy = start.Sub(fi.ModTime()) < racyWindow
	return nil
}

// builder collects names into an arena and entries.
type builder struct {
	arena []byte
	ents  []uint64
	err   error
}

var errTooManyNames = errors.New("too many key names to index (4 GiB of names)")

func (b *builder) add(name []byte) {
	if len(b.arena)+len(name) > math.MaxUint32 {
		b.err = errTooManyNames
		return
	}
	b.ents = append(b.ents, uint64(len(b.arena))<<8|uint64(len(name)))
	b.arena = append(b.arena, name...)
}

// read reads the valid key names of the directory, in batches so that
// memory stays a few bytes per name, checking ctx between batches. The
// entries are not sorted.
func read(ctx context.Context, root *os.Root) (*builder, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("fs: list: %w", err)
	}
	defer d.Close()
	b := new(builder)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			if name := e.Name(); e.Type().IsRegular() && validName(name) == nil {
				b.add([]byte(name))
			}
		}
		if b.err != nil {
			return nil, fmt.Errorf("fs: list: %w", b.err)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fs: list: %w", err)
		}
	}
	// Trim what append doubling left over: the index lives long.
	b.arena = slices.Clip(slices.Clone(b.arena))
	b.ents = slices.Clip(slices.Clone(b.ents))
	return b, nil
}
