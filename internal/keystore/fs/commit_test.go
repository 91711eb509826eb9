package fs_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
)

// syncCounter numbers the shared syncs of a store: started counts those
// begun, finished is the number of the last one that ended. Syncs never
// overlap, so a sync numbered above the value of started at some moment
// began after that moment.
type syncCounter struct {
	started, finished atomic.Uint64
	fail              atomic.Pointer[error] // fails the next sync, once
}

func (c *syncCounter) sync(sync func() error) error {
	n := c.started.Add(1)
	err := sync()
	if injected := c.fail.Swap(nil); injected != nil {
		err = *injected
	}
	c.finished.Store(n)
	return err
}

// TestSyncOrder checks the durability order of concurrent writers: a
// Create links its file only after a shared sync that began after the
// file was written has ended, and returns only after one that began after
// the link; a Delete returns only after a sync has ended.
func TestSyncOrder(t *testing.T) {
	s := newStore(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	var c syncCounter
	var mu sync.Mutex
	written, linked := map[string]uint64{}, map[string]uint64{}
	var errs []string
	s.SetHooks(c.sync, func(step, name string) {
		mu.Lock()
		defer mu.Unlock()
		switch step {
		case "written":
			written[name] = c.started.Load()
		case "durable": // the next step is the link
			if f := c.finished.Load(); f <= written[name] {
				errs = append(errs, fmt.Sprintf("%s linked after sync %d, but written after sync %d began", name, f, written[name]))
			}
		case "linked":
			linked[name] = c.started.Load()
		}
	})
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 8 {
				name := fmt.Sprintf("k-%d-%d", w, i)
				if err := s.Create(ctx, name, []byte(name)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if f := c.finished.Load(); f <= linked[name] {
					errs = append(errs, fmt.Sprintf("Create(%s) returned after sync %d, but linked after sync %d began", name, f, linked[name]))
				}
				mu.Unlock()
				before := c.started.Load()
				if err := s.Delete(ctx, name); err != nil {
					t.Error(err)
					return
				}
				if f := c.finished.Load(); f <= before {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("Delete(%s) returned before a sync that began after the call", name))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	// Group commit: fewer syncs than the 3 per pair of a writer alone.
	if n := c.started.Load(); n == 0 || n > 3*16*8 {
		t.Fatalf("%d syncs for %d pairs", n, 16*8)
	}
}

var errInjected = errors.New("injected sync failure")

// TestSyncFailure: a Create whose first sync fails creates nothing and
// leaves no temporary file; one whose second sync (after the link) fails
// reports it, and the key is complete.
func TestSyncFailure(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	t.Cleanup(func() { s.Close() })
	var c syncCounter
	s.SetHooks(c.sync, nil)
	ctx := t.Context()

	err := errInjected
	c.fail.Store(&err)
	if err := s.Create(ctx, "first", []byte("value")); !errors.Is(err, errInjected) {
		t.Fatalf("Create with a failing first sync: %v, want the injected error", err)
	}
	if _, err := s.Get(ctx, "first"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after a failed Create: %v, want ErrNotFound", err)
	}
	assertNoTemp(t, dir)

	var n atomic.Int32
	s.SetHooks(c.sync, func(step, _ string) {
		if step == "linked" && n.Add(1) == 1 {
			c.fail.Store(&err) // the sync after the link
		}
	})
	if err := s.Create(ctx, "second", []byte("value")); !errors.Is(err, errInjected) {
		t.Fatalf("Create with a failing second sync: %v, want the injected error", err)
	}
	if v, err := s.Get(ctx, "second"); err != nil || string(v) != "value" {
		t.Fatalf("Get after a failed second sync: %q, %v; want the whole value", v, err)
	}
	assertNoTemp(t, dir)
	if err := s.Create(ctx, "third", []byte("value")); err != nil {
		t.Fatal(err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

// crashKeys is how many keys the child of TestCreateCrash creates; it dies
// during the last.
const crashKeys = 4

// crashValue is the value of key i: large enough that a write of it takes
// several pages.
func crashValue(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 64<<10) }

// TestCreateCrash kills a process in the middle of a Create, after each of
// its steps, and opens the directory again: every acknowledged key is
// there whole, the key being created is absent or whole (present only
// once it was linked), and no temporary file stays.
func TestCreateCrash(t *testing.T) {
	if dir := os.Getenv("FS_CRASH_DIR"); dir != "" {
		crashChild(t, dir, os.Getenv("FS_CRASH_STEP"))
		return
	}
	for _, step := range []string{"written", "durable", "linked"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCreateCrash$", "-test.count=1")
			cmd.Env = append(os.Environ(), "FS_CRASH_DIR="+dir, "FS_CRASH_STEP="+step)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed\n%s%s", err, out, stderr.Bytes())
			}
			var acked []string
			for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
				if name, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
					acked = append(acked, name)
				}
			}
			if len(acked) != crashKeys-1 {
				t.Fatalf("child acknowledged %v, want %d keys", acked, crashKeys-1)
			}
			s := newStore(t, dir) // sweeps
			t.Cleanup(func() { s.Close() })
			names, _, err := s.List(t.Context(), "", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			want := acked
			if step == "linked" {
				want = append(want, fmt.Sprint("key-", crashKeys-1))
			}
			if !slices.Equal(names, want) {
				t.Fatalf("keys after the crash %v, want %v", names, want)
			}
			for i, name := range names {
				if v, err := s.Get(t.Context(), name); err != nil || !bytes.Equal(v, crashValue(i)) {
					t.Fatalf("%s after the crash: %d bytes, %v; want its whole value", name, len(v), err)
				}
			}
			assertNoTemp(t, dir)
		})
	}
}

// crashChild creates crashKeys keys in dir, printing each acknowledged
// one, and kills its own process after step of the last.
func crashChild(t *testing.T, dir, step string) {
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprint("key-", crashKeys-1)
	s.SetHooks(nil, func(at, name string) {
		if at == step && name == last {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal arrives
		}
	})
	for i := range crashKeys {
		name := fmt.Sprint("key-", i)
		if err := s.Create(t.Context(), name, crashValue(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %s\n", name)
	}
	t.Fatal("the child was not killed")
}

// TestRenameSyncOrder checks the durability order of concurrent renames:
// the old name is removed only after a sync that began after the link
// has ended (without a journal, a power cut could otherwise keep the
// removal and lose the link), and Rename returns only after a sync that
// began after the removal.
func TestRenameSyncOrder(t *testing.T) {
	s := newStore(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	var c syncCounter
	var mu sync.Mutex
	linked, unlinked := map[string]uint64{}, map[string]uint64{}
	var errs []string
	s.SetHooks(c.sync, func(step, name string) {
		mu.Lock()
		defer mu.Unlock()
		switch step {
		case "rename-linked":
			linked[name] = c.started.Load()
		case "rename-durable": // the next step removes the old name
			if f := c.finished.Load(); f <= linked[name] {
				errs = append(errs, fmt.Sprintf("%s: old name removed after sync %d, but linked after sync %d began", name, f, linked[name]))
			}
		case "rename-unlinked":
			unlinked[name] = c.started.Load()
		}
	})
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 4 {
				name := fmt.Sprintf("k-%d-%d", w, i)
				if err := s.Create(ctx, name, []byte(name)); err != nil {
					t.Error(err)
					return
				}
				if err := s.Rename(ctx, name, "t-"+name); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if f := c.finished.Load(); f <= unlinked["t-"+name] {
					errs = append(errs, fmt.Sprintf("Rename(%s) returned after sync %d, but removed the old name after sync %d began", name, f, unlinked["t-"+name]))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if len(unlinked) != 16*4 {
		t.Fatalf("%d renames seen by the hook, want %d", len(unlinked), 16*4)
	}
}

// TestDeleteSecondName: deleting one name of a file that has another (a
// rename in progress, or one a crash interrupted) syncs the other name
// before it removes this one, and again after.
func TestDeleteSecondName(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "k"), filepath.Join(dir, "k2")); err != nil {
		t.Fatal(err)
	}
	var present []bool // whether k existed when each sync began
	s.SetHooks(func(sync func() error) error {
		_, err := os.Lstat(filepath.Join(dir, "k"))
		present = append(present, err == nil)
		return sync()
	}, nil)
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(present, []bool{true, false}) {
		t.Fatalf("k present at the syncs of Delete: %v, want [true false]", present)
	}
	if v, err := s.Get(ctx, "k2"); err != nil || string(v) != "v" {
		t.Fatalf("the other name: %q, %v", v, err)
	}
	// A file with one name is removed before the only sync.
	present = nil
	if err := s.Delete(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if len(present) != 1 {
		t.Fatalf("%d syncs for deleting a file with one name, want 1", len(present))
	}
}

// TestRenameReplaced: a Replace of the old name while a Rename syncs its
// link keeps the new value under the old name; the Rename fails and the
// old value is under the new name.
func TestRenameReplaced(t *testing.T) {
	s := newStore(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	s.SetHooks(nil, func(step, _ string) {
		if step == "rename-linked" {
			if err := s.Replace(ctx, "k", []byte("old"), []byte("new")); err != nil {
				t.Error(err)
			}
		}
	})
	if err := s.Rename(ctx, "k", "t"); err == nil || errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Rename of a name replaced meanwhile: %v, want another error", err)
	}
	for name, want := range map[string]string{"k": "new", "t": "old"} {
		if v, err := s.Get(ctx, name); err != nil || string(v) != want {
			t.Fatalf("Get(%s) = %q, %v; want %q", name, v, err, want)
		}
	}
}
