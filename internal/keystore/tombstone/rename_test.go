package tombstone_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

// copyOnly hides the stores' Rename, as every wrapper that must not pass
// it through (the HSM layer) does.
type copyOnly struct{ keystore.Store }

// TestFSCopy runs the cases of TestFS (where the directory store renames)
// on the copy-and-delete path.
func TestFSCopy(t *testing.T) {
	run(t, func(t *testing.T) keystore.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return copyOnly{s}
	})
}

func TestMem(t *testing.T) {
	run(t, func(t *testing.T) keystore.Store { return new(mem.Store) })
}

// inode returns the inode number of the file name in dir.
func inode(t *testing.T, dir, name string) uint64 {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestRenameOnFS: through the key cache, as the server calls it, a soft
// delete on the directory store moves the key's file to the tombstone
// name (the same inode: nothing was written again), while a store that
// hides Rename gets a copy (a new file).
func TestRenameOnFS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wrap    func(keystore.Store) keystore.Store
		renamed bool
	}{
		{"fs", func(s keystore.Store) keystore.Store { return s }, true},
		{"copyOnly", func(s keystore.Store) keystore.Store { return copyOnly{s} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := fs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			c := cache.New(tc.wrap(st), func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
			t.Cleanup(func() { c.Close() })
			ctx := t.Context()
			if err := c.Create(ctx, "k", []byte("record")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "k"); err != nil { // cached now
				t.Fatal(err)
			}
			before := inode(t, dir, "k")
			ts, err := tombstone.Delete(ctx, c, "k", t0)
			if err != nil {
				t.Fatal(err)
			}
			if ts.Name != tombstone.NameOf("k", t0) {
				t.Fatalf("Delete = %+v", ts)
			}
			if got := inode(t, dir, ts.Name) == before; got != tc.renamed {
				t.Fatalf("tombstone is the key's file: %v, want %v", got, tc.renamed)
			}
			if _, err := c.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("Get through the cache after the delete: %v, want ErrNotFound", err)
			}
			if got := get(t, st, ts.Name); got != "record" {
				t.Fatalf("tombstone holds %q", got)
			}
			if _, err := tombstone.Restore(ctx, c, "k", time.Time{}); err != nil {
				t.Fatal(err)
			}
			if got := get(t, c, "k"); got != "record" {
				t.Fatalf("restored key holds %q", got)
			}
		})
	}
}

// TestRenameCrash: a crash inside the directory store's Rename, after the
// link and before the unlink, leaves the record under the key and the
// tombstone name (one file, two links). The key is live; deleting it
// again finishes the deletion with that tombstone.
func TestRenameCrash(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mustCreate(t, st, "k", "record")
	name := tombstone.NameOf("k", t0)
	if err := os.Link(filepath.Join(dir, "k"), filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = fs.New(dir); err != nil { // the restart after the crash
		t.Fatal(err)
	}
	s := tombstone.Raw(st)
	if got := get(t, st, "k"); got != "record" {
		t.Fatalf("key after the crash holds %q", got)
	}
	ts, err := tombstone.Delete(t.Context(), s, "k", t0)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Name != name {
		t.Fatalf("repeated Delete = %+v, want the tombstone %s", ts, name)
	}
	if _, err := st.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after the repeated delete: %v, want ErrNotFound", err)
	}
	if found := find(t, s, "k"); len(found) != 1 || get(t, st, found[0].Name) != "record" {
		t.Fatalf("tombstones %v, want the one of the crash", found)
	}
}
