package fs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/openkes/kes/internal/keystore"
)

// TestIndexModel drives the index with random creates and deletes, enough
// to merge its changes into the base several times, and checks every kind
// of page against keystore.Page over a plain set of names.
func TestIndexModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	name := func() string { return "k" + strconv.Itoa(rng.IntN(3000)) }
	model := map[string]bool{}
	var b builder
	for range 500 { // the base of a directory pass
		n := name()
		if !model[n] {
			model[n] = true
			b.add([]byte(n))
		}
	}
	b.done()
	x := &index{built: true, arena: b.arena, base: b.ents}
	slices.SortFunc(x.base, func(e, f uint32) int {
		return slices.Compare(x.name(e), x.name(f))
	})
	merges := 0
	for i := range 6000 {
		n := name()
		if rng.IntN(2) == 0 {
			x.added(n)
			model[n] = true
		} else {
			x.removed(n)
			delete(model, n)
		}
		if len(x.adds) == 0 && len(x.dels) == 0 {
			merges++
		}
		if i%200 != 0 {
			continue
		}
		for _, q := range []struct {
			prefix, continueAt string
			n                  int
		}{{"", "", 1024}, {"", "", 7}, {"k1", "", 50}, {"k12", "k125", 3}, {"k2", "k3", 5}, {"", "k9999", 10}, {"x", "", 10}, {"k29", "", 1024}} {
			all := make([]string, 0, len(model))
			for n := range model {
				all = append(all, n)
			}
			want, wantNext := keystore.Page(all, q.prefix, q.continueAt, q.n)
			got, next := x.page(q.prefix, q.continueAt, q.n)
			if !slices.Equal(got, want) || next != wantNext {
				t.Fatalf("step %d: page(%q, %q, %d) = %q, %q; want %q, %q", i, q.prefix, q.continueAt, q.n, got, next, want, wantNext)
			}
		}
	}
	if merges == 0 {
		t.Fatal("the changes were never merged into the base")
	}
}

// TestSyncGroup: writers that arrive while a directory sync runs are all
// acknowledged by one later sync, never by the one that began before them;
// a writer whose context ends stops waiting with the context's error.
func TestSyncGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g syncGroup
		release := make(chan struct{})
		var mu sync.Mutex
		syncs := 0
		sync := func() error {
			mu.Lock()
			syncs++
			first := syncs == 1
			mu.Unlock()
			if first {
				<-release
			}
			return nil
		}
		leader := make(chan error, 1)
		go func() { leader <- g.wait(context.Background(), sync) }()
		synctest.Wait() // the first sync runs and blocks

		const writers = 31
		errs := make(chan error, writers)
		for range writers {
			go func() { errs <- g.wait(context.Background(), sync) }()
		}
		ctx, cancel := context.WithCancel(context.Background())
		late := make(chan error, 1)
		go func() { late <- g.wait(ctx, sync) }()
		synctest.Wait()
		cancel()
		if err := <-late; !errors.Is(err, context.Canceled) {
			t.Fatalf("wait with a canceled context: %v", err)
		}
		select {
		case err := <-errs:
			t.Fatalf("a writer was acknowledged by a sync that began before it: %v", err)
		default:
		}
		close(release)
		if err := <-leader; err != nil {
			t.Fatal(err)
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if syncs != 2 {
			t.Fatalf("%d syncs for 32 writers in two groups, want 2", syncs)
		}
	})
}

// TestSyncGroupError: the error of the sync reaches every writer it covers.
func TestSyncGroupError(t *testing.T) {
	var g syncGroup
	boom := errors.New("boom")
	if err := g.wait(context.Background(), func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want %v", err, boom)
	}
	if err := g.wait(context.Background(), func() error { return nil }); err != nil {
		t.Fatalf("wait after a failed sync = %v, want a new sync's nil", err)
	}
}

// TestIndexCompaction: once the names deleted since the directory pass
// are half of the arena, the arena is rebuilt with the live names only.
func TestIndexCompaction(t *testing.T) {
	var b builder
	const n = 50_000
	for i := range n {
		b.add(fmt.Appendf(nil, "k%0119d", i))
	}
	b.done()
	x := &index{built: true, arena: b.arena, base: b.ents}
	before := x.arena.size()
	for i := range n {
		if i%100 != 0 {
			x.removed(fmt.Sprintf("k%0119d", i))
		}
	}
	x.added("a")
	if x.arena.size() >= before/2 {
		t.Fatalf("arena of %d bytes after deleting 99 %%, %d before", x.arena.size(), before)
	}
	name := func(i int) string { return fmt.Sprintf("k%0119d", i) }
	got, next := x.page("k0", name(1), 5)
	if want := []string{name(100), name(200), name(300), name(400), name(500)}; !slices.Equal(got, want) || next != name(600) {
		t.Fatalf("page = %q, %q; want %q, %s", got, next, want, name(600))
	}
	if got, _ := x.page("", "", 3); !slices.Equal(got, []string{"a", name(0), name(100)}) {
		t.Fatalf("page = %q", got)
	}
}
