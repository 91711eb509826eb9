// Package fs implements a [keystore.Store] that keeps one file per key in a
// directory, in exactly upstream KES's layout (spec config.md §9.1): the file
// name is the key name, the content is the stored value with no trailing
// newline, the mode is 0600. A directory written by upstream KES is served
// unchanged and vice versa. The store is meant for tests and single-node
// setups.
//
// Writes are atomic and exclusive: the value is written to a temporary file
// whose name contains a '.' and hard-linked to the key name, which fails if
// the name exists; a crash never leaves a half-written record under a key
// name. Writers share their syncs (group commit, see syncGroup): a Create
// waits for a shared sync that began after it wrote its temporary file
// (the value is on disk) before it links it, and for another one that
// began after the link (the name is on disk) before it returns; a Delete
// or Replace waits for one after its change, and a Rename for one after
// its link and one after its unlink. So an acknowledged change survives a
// power cut. On Linux the shared sync is one syncfs(2)
// of the file system, which writes the temporary files of every waiting
// writer and the directory at once, on a directory the Store keeps open
// from New to Close; elsewhere each writer fsyncs its temporary file and
// the shared sync fsyncs the directory.
//
// syncfs writes every dirty page of the whole file system, not only the
// store's: an unrelated writer with much unwritten data on the same file
// system (a log, a database, a copy) makes Create and Delete wait for its
// data too. Give the store a file system of its own where that matters.
//
// The writer holds an flock(2) on its temporary file until it is linked
// and unlinked, and [New] sweeps the temporary files a crash left behind
// (no process holds their lock any more), so that no key's bytes outlive
// its deletion and no half-written file stays. [Store.Replace] renames
// such a file over the key instead, so a reader sees the old or the new
// value, never none. Every operation works below an [os.Root], so no name,
// symlink or ".." can reach outside the directory; names that a directory
// cannot hold safely are rejected before the disk is touched.
//
// List answers from a sorted index of the names kept in memory (see index),
// so a page costs what it returns, also with a million keys.
//
// It imports only the keystore contract, the SDK's error values and, on
// Linux, golang.org/x/sys/unix for syncfs.
package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/openkes/kes/internal/keystore"
)

// MaxValueSize is the largest value the store writes or reads (1 MiB), as
// upstream's read limit.
const MaxValueSize = 1 << 20

// maxNameLen is the longest file name common file systems accept.
const maxNameLen = 255

// ErrInvalidName is wrapped by the error returned for a name the directory
// cannot hold: empty, longer than 255 bytes, ".", "..", or containing '/',
// '\', '.' or NUL.
var ErrInvalidName = errors.New("invalid key name for a directory store")

// ErrTooLarge is wrapped by the error returned for a value larger than
// [MaxValueSize], when writing or reading.
var ErrTooLarge = errors.New("value exceeds 1 MiB")

// Store keeps keys as files in a directory. Create one with [New]. A Store
// is safe for concurrent use, also by several processes sharing the
// directory.
type Store struct {
	dir string

	// mu makes Replace's compare and rename one step with respect to the
	// Replace and Delete calls of this Store.
	mu sync.Mutex

	// renaming holds the names a Rename is moving, from its link to its
	// unlink; the channel closes when it ends. Guarded by mu.
	renaming map[string]chan struct{}

	// d is the directory, open from New to Close for the shared sync
	// (see syncAll).
	d *os.File

	commits syncGroup // the shared sync
	idx     index     // the names, for List

	hooks *testHooks // nil but in tests
}

// testHooks let tests watch and fail the steps of a write.
type testHooks struct {
	// sync runs each shared sync; it may fail it instead.
	sync func(sync func() error) error
	// step is called after a Create's steps: "written" (the temporary
	// file), "durable" (the first shared sync), "linked" (before the
	// temporary name is removed), with the key name; and after a
	// Rename's: "rename-linked", "rename-durable" (the first sync),
	// "rename-unlinked", with the new name.
	step func(step, name string)
}

var (
	_ keystore.Store    = (*Store)(nil)
	_ keystore.Replacer = (*Store)(nil)
)

// New returns a store that keeps its keys in dir. It creates dir and its
// parents with mode 0700 if missing, removes the temporary files that a
// crash during a Create left behind (see sweep) and reads the key names
// into the list index (see index): about 2 s and 16 MB for a million keys.
// It fails if dir is empty or is not a directory, or cannot be read.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: no directory path specified")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fs: %s is not a directory", abs)
	}
	s := &Store{dir: abs}
	if err := s.sweep(time.Now()); err != nil {
		return nil, err
	}
	if err := s.buildIndex(); err != nil {
		return nil, err
	}
	if s.d, err = os.Open(abs); err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	return s, nil
}

// buildIndex reads the directory into the list index (see index), so that
// the first List of a large store answers as fast as later ones.
func (s *Store) buildIndex() error {
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	s.idx.scanMu.Lock()
	defer s.idx.scanMu.Unlock()
	return s.idx.refresh(context.Background(), root)
}

// tmpPrefix starts the name of every temporary file. A '.' never occurs in
// a key name, so a temporary file is never listed or taken for a key.
const tmpPrefix = ".tmp-"

// staleTmpAge is how old a temporary file that is not linked to a key must
// be before New removes it where flock(2) cannot tell whether a writer
// still owns it: younger ones may belong to a Create of another process
// sharing the directory, which takes milliseconds.
const staleTmpAge = time.Minute

// sweep removes the temporary files a crash left behind, so that no key
// material outlives its key. A crash between linking a new key and removing
// its temporary name leaves a second name of the key's file: if the key is
// deleted later, its bytes would stay on disk under that name. Such files
// (link count above one) are removed at once. A crash before the link
// leaves a file that no key names: it is removed if no process holds its
// lock (its writer died), or, where locks are unknown, once it is older
// than staleTmpAge. Only regular files are touched.
func (s *Store) sweep(now time.Time) error {
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	// The temporary files are gathered first, a batch of names at a time:
	// a directory with a million keys must not be held in memory. Names
	// only: a directory opened below a Root lstats every entry ReadDir
	// returns, which takes seconds with a million keys.
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("fs: sweep: %w", err)
	}
	var temps []string
	for {
		batch, err := d.Readdirnames(1024)
		for _, name := range batch {
			if strings.HasPrefix(name, tmpPrefix) {
				temps = append(temps, name)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.Close()
			return fmt.Errorf("fs: sweep: %w", err)
		}
	}
	d.Close()
	removed := false
	for _, name := range temps {
		fi, err := root.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() {
			continue // gone since read, or not a regular file
		}
		if n, ok := linkCount(fi); (ok && n > 1) || abandoned(root, name, fi, now) {
			if err := root.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
				return fmt.Errorf("fs: sweep: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := syncDir(root); err != nil {
			return fmt.Errorf("fs: sweep: %w", err)
		}
	}
	return nil
}

// abandoned reports whether the unlinked temporary file name (described by
// fi) belongs to no running Create or Replace: nobody holds its lock, or,
// where that cannot be told, it is older than staleTmpAge. A writer of
// another process that opened the file but has not locked it yet (a few
// instructions) loses it: its link fails and its Create returns an error,
// so nothing acknowledged is lost.
func abandoned(root *os.Root, name string, fi iofs.FileInfo, now time.Time) bool {
	f, err := root.Open(name)
	if err != nil {
		return false // gone since Lstat, or unreadable: leave it
	}
	defer f.Close()
	if free, known := unlocked(f); known {
		return free
	}
	return now.Sub(fi.ModTime()) >= staleTmpAge
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.dir }

// Status reports how long a stat of the directory took. If the directory is
// missing or not a directory, the error wraps a [*keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	if err := ctx.Err(); err != nil {
		return keystore.State{}, err
	}
	start := time.Now()
	fi, err := os.Stat(s.dir)
	if err != nil {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("fs: %w", err)}
	}
	if !fi.IsDir() {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("fs: %s is not a directory", s.dir)}
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Create writes value to the file name. It returns an error matching
// keystore.ErrExists if the file exists, one wrapping [ErrInvalidName] for a
// name the directory cannot hold and one wrapping [ErrTooLarge] for a value
// larger than [MaxValueSize].
//
// If ctx ends before the name is linked, nothing is created. If it ends
// after the link, while Create waits for the sync that makes the name
// durable, Create returns ctx's error although the key exists: it is
// complete (its data was synced before the link), readable at once and
// durable with the next shared sync of any writer. It cannot be taken
// back, since a reader may already use it. The API then answers 503
// "request timeout exceeded", as for any store that times out after a
// write, and a retried create answers that the key exists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("fs: create %q: %w", name, ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	// Refuse an existing name before writing anything.
	if _, err := root.Lstat(name); err == nil {
		return fmt.Errorf("fs: create %q: %w", name, keystore.ErrExists)
	}
	// A crash may leave the temporary file behind; New sweeps it.
	tmp, f, err := writeTemp(root, value, !syncsFS)
	if err != nil {
		return fmt.Errorf("fs: create %q: %w", name, err)
	}
	s.step("written", name)
	// Phase 1: the value is on disk before a name points at it.
	if syncsFS {
		err = s.commit(ctx)
	} else {
		err = ctx.Err() // the fsync took the time: create nothing
	}
	if err != nil {
		root.Remove(tmp)
		f.Close()
		return fmt.Errorf("fs: create %q: %w", name, err)
	}
	s.step("durable", name)
	// The link and the index change are one step with respect to Delete,
	// so that the index never keeps a name a Delete removed meanwhile.
	s.mu.Lock()
	err = root.Link(tmp, name)
	if err == nil {
		s.idx.added(name)
	}
	s.mu.Unlock()
	if err == nil {
		s.step("linked", name)
	}
	root.Remove(tmp)
	f.Close() // releases the lock once the temporary name is gone
	if errors.Is(err, iofs.ErrExist) {
		return fmt.Errorf("fs: create %q: %w", name, keystore.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("fs: create %q: %w", name, err)
	}
	// Phase 2: the name is on disk.
	if err := s.commit(ctx); err != nil {
		return fmt.Errorf("fs: create %q: %w", name, err)
	}
	return nil
}

// step calls the test hook of a Create's step, if any.
func (s *Store) step(step, name string) {
	if s.hooks != nil && s.hooks.step != nil {
		s.hooks.step(step, name)
	}
}

// Get returns the content of the file name. It returns an error matching
// keystore.ErrNotFound if there is no such file, one wrapping [ErrInvalidName]
// for a name the directory cannot hold and one wrapping [ErrTooLarge] for a
// file larger than [MaxValueSize]. Anything but a regular file is an error.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()

	// Lstat first: opening a FIFO or device could block or have effects.
	fi, err := root.Lstat(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("fs: get %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: get %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fs: get %q: not a regular file", name)
	}
	f, err := root.Open(name)
	if errors.Is(err, iofs.ErrNotExist) { // deleted since the Lstat
		return nil, fmt.Errorf("fs: get %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: get %q: %w", name, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fs: get %q: not a regular file", name)
	}
	value, err := io.ReadAll(io.LimitReader(f, MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("fs: get %q: %w", name, err)
	}
	if len(value) > MaxValueSize {
		return nil, fmt.Errorf("fs: get %q: %w", name, ErrTooLarge)
	}
	return value, nil
}

// Delete removes the file name. It returns an error matching
// keystore.ErrNotFound if there is no such file and one wrapping
// [ErrInvalidName] for a name the directory cannot hold. Anything but a
// regular file is left in place and reported as an error. If ctx ends
// while Delete waits for the directory sync, it returns ctx's error
// although the name is gone (durable with the next sync), as Create.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	err = s.remove(root, name, false)
	if errors.Is(err, errLinked) {
		// Another name of the file may be a link not yet on disk (a
		// Rename in progress, or this one's retry after a crash): sync
		// it before this name goes.
		if err := s.commit(ctx); err != nil {
			return fmt.Errorf("fs: delete %q: %w", name, err)
		}
		err = s.remove(root, name, true)
	}
	if err != nil {
		return err
	}
	if err := s.commit(ctx); err != nil {
		return fmt.Errorf("fs: delete %q: %w", name, err)
	}
	return nil
}

// errLinked is remove's answer for a file with other names.
var errLinked = errors.New("the file has other names")

// remove removes the regular file name and drops it from the index, as
// one step with respect to Create's link and Replace. Unless linked is
// set, it returns errLinked, removing nothing, if the file has other
// names.
func (s *Store) remove(root *os.Root, name string, linked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := root.Lstat(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("fs: delete %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("fs: delete %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("fs: delete %q: not a regular file", name)
	}
	if n, ok := linkCount(fi); ok && n > 1 && !linked {
		return errLinked
	}
	err = root.Remove(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("fs: delete %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("fs: delete %q: %w", name, err)
	}
	s.idx.removed(name)
	return nil
}

// ReplacesInPlace implements [keystore.Overwriter]: a replaced value is
// stored as a created one is, for every reader.
func (s *Store) ReplacesInPlace() {}

var _ keystore.Overwriter = (*Store)(nil)

// Replace writes new to the file name if its content is old; see
// [keystore.Replacer]. The new content is written to a temporary file with
// mode 0600 and fsync'ed, renamed over name (atomic) and the directory
// fsync'ed. It returns an error matching keystore.ErrNotFound if there is
// no such file, one matching keystore.ErrChanged if the content is not
// old, one wrapping [ErrInvalidName] for a name the directory cannot hold
// and one wrapping [ErrTooLarge] for a value larger than [MaxValueSize].
//
// The compare and the rename are one step for the callers of this Store
// and, where flock(2) exists, for every process that replaces keys in the
// same directory (several servers on one volume): they hold an exclusive
// lock of the directory from the compare to the rename. Create and Delete
// of other processes are not excluded; a Create never overwrites, and a
// Delete racing a Replace may leave the replaced key.
func (s *Store) Replace(ctx context.Context, name string, old, new []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if len(new) > MaxValueSize {
		return fmt.Errorf("fs: replace %q: %w", name, ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	unlock, err := lockDir(root)
	if err != nil {
		return fmt.Errorf("fs: replace %q: lock: %w", name, err)
	}
	defer unlock() // at the latest; once the rename is done, at once
	current, err := s.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("fs: replace: %w", err)
	}
	if !bytes.Equal(current, old) {
		return fmt.Errorf("fs: replace %q: %w", name, keystore.ErrChanged)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The file is fsync'ed itself: the shared sync would wait for the
	// directory lock that other processes' Replace calls hold meanwhile.
	tmp, f, err := writeTemp(root, new, true)
	if err != nil {
		return fmt.Errorf("fs: replace %q: %w", name, err)
	}
	err = root.Rename(tmp, name)
	if err != nil {
		root.Remove(tmp)
	}
	f.Close()
	unlock()
	if err != nil {
		return fmt.Errorf("fs: replace %q: %w", name, err)
	}
	s.idx.added(name) // the name exists, even if another process removed it meanwhile
	if err := s.commit(ctx); err != nil {
		return fmt.Errorf("fs: replace %q: %w", name, err)
	}
	return nil
}

// List returns up to n key names that start with prefix, sorted, beginning
// at the first name >= continueAt; see [keystore.Store]. Only regular files
// with valid key names count, so temporary files and subdirectories are
// never listed. n <= 0 means [keystore.ListPageSize]. The returned slice
// belongs to the caller.
//
// The names come from the index (see index), which New built: List reads
// the directory again only if it changed behind this Store, at most once
// per ten times the duration of a pass, so a change made by another
// process can take that long to show.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	s.idx.scanMu.Lock()
	err = s.idx.refresh(ctx, root)
	s.idx.scanMu.Unlock()
	if err != nil {
		return nil, "", err
	}
	if n <= 0 {
		n = keystore.ListPageSize
	}
	page, next := s.idx.page(prefix, continueAt, n)
	return page, next, nil
}

// Close closes the directory the Store keeps open for its syncs and
// releases the memory of the list index (see index). Calls made after
// Close fail; they must not overlap it.
func (s *Store) Close() error {
	s.idx.scanMu.Lock()
	defer s.idx.scanMu.Unlock()
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	s.idx.free()
	if err := s.d.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("fs: close: %w", err)
	}
	return nil
}

// openRoot opens the directory. Failing to do so means the store cannot be
// reached, so the error wraps a [*keystore.UnreachableError].
func (s *Store) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("fs: %w", err)}
	}
	return root, nil
}

// validName reports an error wrapping ErrInvalidName unless name is a file
// name that stays inside the directory and cannot collide with a temporary
// file.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > maxNameLen ||
		strings.ContainsAny(name, "/\\.\x00") || !filepath.IsLocal(name) {
		return fmt.Errorf("fs: %q: %w", name, ErrInvalidName)
	}
	return nil
}

// writeTemp creates a new temporary file exclusively with mode 0600, locks
// it if the file system can (see lockTemp), writes value and, if fsync is
// set, fsyncs it. It returns the file's name
// and the open file, whose Close releases the lock: the caller closes it
// after linking or renaming the file and removing the temporary name. On
// error nothing is left behind.
func writeTemp(root *os.Root, value []byte, fsync bool) (string, *os.File, error) {
	name := tmpPrefix + rand.Text()
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, err
	}
	// Best effort: on a file system without locks (ENOLCK, some network
	// file systems) the sweep of others cannot lock either and goes by age.
	lockTemp(f)
	_, err = f.Write(value)
	if err == nil && fsync {
		err = f.Sync()
	}
	if err != nil {
		root.Remove(name)
		f.Close()
		// A file opened below a Root carries its absolute path; name the
		// file as the other errors of the store do, relative to it.
		if pe, ok := errors.AsType[*iofs.PathError](err); ok {
			pe.Path = name
		}
		return "", nil, err
	}
	return name, f, nil
}

// commit returns once a shared sync (see syncAll) that began after the
// call has ended, or when ctx ends.
func (s *Store) commit(ctx context.Context) error {
	return s.commits.wait(ctx, s.syncAll)
}

// syncAll runs one shared sync, through the test hook if there is one.
func (s *Store) syncAll() error {
	if s.hooks != nil && s.hooks.sync != nil {
		return s.hooks.sync(func() error { return syncAll(s.d, s.dir) })
	}
	return syncAll(s.d, s.dir)
}

// syncDir fsyncs the directory so that a new or removed name survives a
// crash.
func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
