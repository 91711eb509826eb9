package fs_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
)

// TestReplaceAcrossStores: several Stores on one directory (several
// servers on one volume) replace a key from the same value at once:
// exactly one wins per round, so a chain of rounds loses no value.
func TestReplaceAcrossStores(t *testing.T) {
	dir := t.TempDir()
	stores := make([]*fs.Store, 4)
	for i := range stores {
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	ctx := t.Context()
	if err := stores[0].Create(ctx, "k", []byte("0")); err != nil {
		t.Fatal(err)
	}
	for round := range 50 {
		old := []byte(fmt.Sprint(round))
		var wins sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i, s := range stores {
			wins.Go(func() {
				err := s.Replace(ctx, "k", old, []byte(fmt.Sprint(round+1)))
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, keystore.ErrChanged):
					t.Errorf("store %d: %v", i, err)
				}
			})
		}
		wins.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d replaces won, want 1", round, won)
		}
	}
	if v, err := stores[3].Get(ctx, "k"); err != nil || string(v) != "50" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
