package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
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
// Layout, 5 bytes per key beyond its name: the names lie back to back,
// each after its length byte, in blocks of 1 MiB (an arena; no block is
// ever copied to grow), and a sorted slice of 4-byte entries (positions)
// orders them: the base. Creates and deletes of this process go to a small sorted slice of
// added names and a set of deleted base names, merged into a new base once
// they grow past a fraction of it, so that a create costs O(log n) plus an
// amortized copy of the entries. With a million 11-byte names the index
// takes about 16 MB, outside the Go heap (see allocBytes) so that it does
// not raise the garbage collector's heap goal; Close releases it.
//
// Other processes (another server sharing the directory, an operator
// copying files in) change the directory behind the index. List stats the
// directory first; if its modification time or identity differs from the
// last pass, or the last pass saw a modification too recent to trust the
// time's granularity, the directory is read again, at most once per ten
// times the duration of the last pass, so that passes take at most a tenth
// of a core however often List is called. A listing can therefore miss
// another process's change for that long (milliseconds with a thousand
// keys, about 20 s with a million here); this process's own changes show
// at once. Get, Create and Delete never use the index.
//
// New builds the index, so that the first List of a large store is as
// fast as later ones; after Close, the next List builds it again.
type index struct {
	// scanMu is held by the List that checks and rebuilds the index, so
	// that one pass runs at a time; mu guards the fields below and is held
	// only briefly.
	scanMu sync.Mutex

	mu    sync.Mutex
	built bool
	arena arena               // names of the base, and of deleted ones
	base  []uint32            // sorted by name: entries of arena
	adds  []string            // sorted; created since the pass, not in base
	dels  map[string]struct{} // base names deleted since the pass
	dead  int                 // bytes of arena no base entry refers to

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
func (x *index) name(e uint32) []byte { return x.arena.name(e) }

// arenaBits is log2 of the size of the blocks of an arena.
const (
	arenaBits  = 20
	arenaBlock = 1 << arenaBits
)

// arena keeps names back to back in blocks of arenaBlock bytes, each
// after a byte that holds its length (at most 255); a name never straddles
// two blocks. An entry locates a name: block<<arenaBits | offset, so an
// arena holds at most maxBlocks blocks (4 GiB).
type arena struct {
	blocks [][]byte
}

const maxBlocks = 1 << (32 - arenaBits)

// add copies name into the arena and returns its entry, or false if the
// arena is full.
func (a *arena) add(name []byte) (uint32, bool) {
	last := len(a.blocks) - 1
	if last < 0 || len(a.blocks[last])+1+len(name) > arenaBlock {
		if len(a.blocks) == maxBlocks {
			return 0, false
		}
		a.blocks = append(a.blocks, allocBytes(arenaBlock))
		last++
	}
	off := len(a.blocks[last])
	a.blocks[last] = append(append(a.blocks[last], byte(len(name))), name...)
	return uint32(last)<<arenaBits | uint32(off), true
}

// name returns the name of entry e.
func (a *arena) name(e uint32) []byte {
	b, off := a.blocks[e>>arenaBits], e&(arenaBlock-1)
	return b[off+1 : off+1+uint32(b[off])]
}

// free releases the blocks.
func (a *arena) free() {
	for _, b := range a.blocks {
		freeBytes(b)
	}
	a.blocks = nil
}

// free releases the memory of the index; it is built again by the next
// List. x.mu is held.
func (x *index) free() {
	x.arena.free()
	freeUint32s(x.base)
	x.base, x.adds, x.dels, x.dead, x.built = nil, nil, nil, 0, false
}

// size returns the bytes the arena holds.
func (a *arena) size() int { return len(a.blocks) * arenaBlock }

// searchBase returns the position of the first base name >= name and
// whether it is name.
func (x *index) searchBase(name string) (int, bool) {
	return slices.BinarySearchFunc(x.base, name, func(e uint32, name string) int {
		return strings.Compare(string(x.name(e)), name)
	})
}

// merge folds adds and dels into a new base; x.mu is held. The added
// names go to the arena; the deleted ones stay there as dead bytes until
// they are half of it, when the arena is rebuilt.
func (x *index) merge() {
	ents := allocUint32s(len(x.base) - len(x.dels) + len(x.adds))
	full := false
	x.each("", func(name []byte, e uint32, inBase bool) bool {
		if !inBase {
			var ok bool
			if e, ok = x.arena.add(name); !ok {
				full = true
				return false
			}
		}
		ents = append(ents, e)
		return true
	})
	if full { // 4 GiB of names: keep listing from adds and dels
		freeUint32s(ents)
		return
	}
	for n := range x.dels {
		x.dead += len(n) + 1
	}
	freeUint32s(x.base)
	x.base, x.adds, x.dels = ents, nil, nil
	if x.dead > 4*arenaBlock && x.dead > x.arena.size()/2 {
		var a arena
		for i, e := range x.base {
			x.base[i], _ = a.add(x.arena.name(e)) // fewer names than before: fits
		}
		x.arena.free()
		x.arena, x.dead = a, 0
	}
}

// each calls fn with the names >= start in order until fn returns false,
// with the base entry of the name if inBase; x.mu is held. The slice
// passed to fn is valid only during the call.
func (x *index) each(start string, fn func(name []byte, e uint32, inBase bool) bool) {
	i, _ := x.searchBase(start)
	j, _ := slices.BinarySearch(x.adds, start)
	for i < len(x.base) || j < len(x.adds) {
		if j == len(x.adds) || (i < len(x.base) && string(x.name(x.base[i])) < x.adds[j]) {
			e := x.base[i]
			i++
			name := x.name(e)
			if _, gone := x.dels[string(name)]; gone {
				continue
			}
			if !fn(name, e, true) {
				return
			}
		} else {
			j++
			if !fn([]byte(x.adds[j-1]), 0, false) {
				return
			}
		}
	}
}

// page answers a List call from the index for n > 0; see [Store.List].
func (x *index) page(prefix, continueAt string, n int) ([]string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var names []string
	var next string
	x.each(max(prefix, continueAt), func(name []byte, _ uint32, _ bool) bool {
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
	slices.SortFunc(b.ents, func(e, f uint32) int {
		return bytes.Compare(b.arena.name(e), b.arena.name(f))
	})
	x.free()
	x.arena, x.base, x.built = b.arena, b.ents, true
	for _, c := range pending {
		x.apply(c)
	}
	x.stamp, x.scanned, x.scanCost = fi, start, time.Since(start)
	x.racy = start.Sub(fi.ModTime()) < racyWindow
	return nil
}

// builder collects names into an arena and entries. The entries are
// gathered in chunks and copied once into a slice of the exact length, so
// that no slice is copied again and again to grow (a million entries are
// 8 MB).
type builder struct {
	arena  arena
	chunks [][]uint32
	ents   []uint32 // set by done
	full   bool     // the arena is full: names were left out
}

const chunkLen = 1 << 14

func (b *builder) add(name []byte) {
	e, ok := b.arena.add(name)
	if !ok {
		b.full = true
		return
	}
	last := len(b.chunks) - 1
	if last < 0 || len(b.chunks[last]) == chunkLen {
		b.chunks = append(b.chunks, allocUint32s(chunkLen))
		last++
	}
	b.chunks[last] = append(b.chunks[last], e)
}

// done gathers the entries in ents.
func (b *builder) done() {
	n := 0
	for _, c := range b.chunks {
		n += len(c)
	}
	b.ents = allocUint32s(n)
	for _, c := range b.chunks {
		b.ents = append(b.ents, c...)
		freeUint32s(c)
	}
	b.chunks = nil
}

// free releases everything b holds.
func (b *builder) free() {
	for _, c := range b.chunks {
		freeUint32s(c)
	}
	freeUint32s(b.ents)
	b.arena.free()
}

// read reads the valid key names of the directory, in batches so that
// memory stays a few bytes per name, checking ctx between batches. The
// entries are not sorted.
func read(ctx context.Context, root *os.Root) (*builder, error) {
	// Not root.Open("."): a directory opened below a Root lstats every
	// entry it reads (Go 1.26), ten times the cost of the pass, where the
	// file type the kernel returns with the name suffices. Only names are
	// read here; nothing is opened by them.
	d, err := os.Open(root.Name())
	if err != nil {
		return nil, fmt.Errorf("fs: list: %w", err)
	}
	defer d.Close()
	b := new(builder)
	isRegular := func(name string) bool {
		fi, err := root.Lstat(name)
		return err == nil && fi.Mode().IsRegular()
	}
	err = readNames(ctx, d, isRegular, func(name []byte) {
		if validKeyName(name) {
			b.add(name)
		}
	})
	if err == nil && b.full {
		err = errors.New("more than 4 GiB of key names")
	}
	if err != nil {
		b.free()
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("fs: list: %w", err)
	}
	b.done()
	return b, nil
}

// validKeyName is validName for a name read from the directory, without
// allocating.
func validKeyName(name []byte) bool {
	return len(name) > 0 && len(name) <= maxNameLen && !bytes.ContainsAny(name, "/\\.\x00") &&
		filepath.IsLocal(string(name))
}
