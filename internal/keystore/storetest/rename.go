package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/keystore"
)

// runRename runs the cases of the optional [keystore.Renamer] capability
// on stores that offer it. A wrapper whose store below cannot rename
// offers the method but must answer errors.ErrUnsupported and change
// nothing; that is checked instead.
func runRename(t *testing.T, newStore func(t *testing.T) keystore.Store, opts Options) {
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, s keystore.Store, r keystore.Renamer, opts Options)
	}{{"Rename", testRename}, {"ConcurrentRename", testConcurrentRename}} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, newStore)
			r, ok := s.(keystore.Renamer)
			if !ok {
				t.Fatal("the store offered keystore.Renamer in the other tests but not here")
			}
			mustCreate(t, s, "probe", []byte("v"))
			err := r.Rename(t.Context(), "probe", "probe-2")
			if errors.Is(err, errors.ErrUnsupported) {
				mustGet(t, s, "probe", []byte("v"))
				if _, err := s.Get(t.Context(), "probe-2"); !errors.Is(err, keystore.ErrNotFound) {
					t.Fatalf("an unsupported Rename created its target: Get = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Rename(probe, probe-2): %v", err)
			}
			if err := s.Delete(t.Context(), "probe-2"); err != nil {
				t.Fatal(err)
			}
			tt.fn(t, s, r, opts)
		})
	}
}

func testRename(t *testing.T, s keystore.Store, r keystore.Renamer, _ Options) {
	ctx := t.Context()
	mustCreate(t, s, "a", []byte("value-a"))
	mustCreate(t, s, "b", []byte("value-b"))
	if err := r.Rename(ctx, "a", "c"); err != nil {
		t.Fatalf("Rename(a, c): %v", err)
	}
	mustGet(t, s, "c", []byte("value-a"))
	if _, err := s.Get(ctx, "a"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a renamed name: %v, want keystore.ErrNotFound", err)
	}
	if err := r.Rename(ctx, "c", "b"); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Rename onto a taken name: %v, want keystore.ErrExists", err)
	}
	mustGet(t, s, "b", []byte("value-b"))
	mustGet(t, s, "c", []byte("value-a"))
	if err := r.Rename(ctx, "missing", "d"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Rename of a missing name: %v, want keystore.ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "d"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Rename of a missing name created its target: Get = %v", err)
	}
	names, _, err := s.List(ctx, "", "", 0)
	if err != nil || !slices.Equal(names, []string{"b", "c"}) {
		t.Fatalf("List after Rename = %q, %v; want [b c]", names, err)
	}
	// The old name is free again.
	mustCreate(t, s, "a", []byte("value-a2"))
	mustGet(t, s, "a", []byte("value-a2"))
}

// testConcurrentRename races renames of one name to distinct targets:
// exactly one wins, the others find the name gone.
func testConcurrentRename(t *testing.T, s keystore.Store, r keystore.Renamer, opts Options) {
	mustCreate(t, s, "contended", []byte("v0"))
	n := opts.Concurrency
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = r.Rename(t.Context(), "contended", fmt.Sprintf("target-%d", i))
		})
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("Rename to target-%d and target-%d both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, keystore.ErrNotFound):
			t.Fatalf("losing Rename: %v, want keystore.ErrNotFound", err)
		}
	}
	if won < 0 {
		t.Fatal("no Rename succeeded")
	}
	names, _, err := s.List(t.Context(), "", "", 0)
	if want := []string{fmt.Sprintf("target-%d", won)}; err != nil || !slices.Equal(names, want) {
		t.Fatalf("List after the race = %q, %v; want %q", names, err, want)
	}
	mustGet(t, s, fmt.Sprintf("target-%d", won), []byte("v0"))
}
