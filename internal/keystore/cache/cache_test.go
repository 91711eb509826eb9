// Tests of time-dependent behaviour run either with an injected clock
// (Config.Now) or inside a testing/synctest bubble, where time.Sleep advances
// a fake clock instantly once every goroutine of the bubble is blocked.
package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

func TestConformance(t *testing.T) {
	// A Cache[[]byte] is a keystore.Store and must behave as the store it
	// wraps.
	storetest.Run(t, func(t *testing.T) keystore.Store {
		return cache.New(new(mem.Store), func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
	})
}

func TestHit(t *testing.T) {
	c, s, decodes := newCache(t, cache.Config{})
	s.put(t, "k", "v1")
	mustGet(t, c, s, "k", "v1", 1)
	mustGet(t, c, s, "k", "v1", 1)
	p1, _ := c.Get(t.Context(), "k")
	p2, _ := c.Get(t.Context(), "k")
	if p1 != p2 || decodes.Load() != 1 {
		t.Fatalf("hits returned %p and %p after %d decodes; want the one decoded value", p1, p2, decodes.Load())
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
}

func TestDefaults(t *testing.T) {
	// The documented defaults (not upstream's 30 s flush): an entry used
	// every 20 s lives 5 m; an idle entry lives 30 s.
	clock := newClock()
	c, s, _ := newCache(t, cache.Config{Now: clock.Now})
	s.put(t, "busy", "b")
	s.put(t, "idle", "i")
	mustGet(t, c, s, "busy", "b", 1)
	mustGet(t, c, s, "idle", "i", 2)
	for range 14 { // 4m40s
		clock.Advance(20 * time.Second)
		mustGet(t, c, s, "busy", "b", 2)
	}
	mustGet(t, c, s, "idle", "i", 3) // idle for 4m40s
	clock.Advance(20 * time.Second)  // busy was read 5 m ago
	mustGet(t, c, s, "busy", "b", 4)
	mustGet(t, c, s, "idle", "i", 4) // read 20 s ago
	clock.Advance(29 * time.Second)
	mustGet(t, c, s, "idle", "i", 4) // read 49 s ago, last used 29 s ago
	clock.Advance(30 * time.Second)
	mustGet(t, c, s, "idle", "i", 5)
}

func TestAnyExpiry(t *testing.T) {
	clock := newClock()
	c, s, decodes := newCache(t, cache.Config{Any: 5 * time.Minute, Unused: time.Hour, Now: clock.Now})
	s.put(t, "k", "v")
	mustGet(t, c, s, "k", "v", 1)
	clock.Advance(5*time.Minute - time.Nanosecond)
	mustGet(t, c, s, "k", "v", 1)
	clock.Advance(time.Nanosecond)
	mustGet(t, c, s, "k", "v", 2)
	if decodes.Load() != 2 {
		t.Fatalf("%d decodes, want 2", decodes.Load())
	}
	// Expired entries pick up changes made behind the cache's back.
	if err := s.Store.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	s.put(t, "k", "v2")
	mustGet(t, c, s, "k", "v", 2)
	clock.Advance(5 * time.Minute)
	mustGet(t, c, s, "k", "v2", 3)
}

func TestUnusedExpiry(t *testing.T) {
	clock := newClock()
	c, s, _ := newCache(t, cache.Config{Any: time.Hour, Unused: 30 * time.Second, Now: clock.Now})
	s.put(t, "k", "v")
	mustGet(t, c, s, "k", "v", 1)
	clock.Advance(20 * time.Second)
	mustGet(t, c, s, "k", "v", 1) // used at 20 s
	clock.Advance(29 * time.Second)
	mustGet(t, c, s, "k", "v", 1) // 49 s: unused for 29 s; used at 49 s
	clock.Advance(30 * time.Second)
	mustGet(t, c, s, "k", "v", 2) // 79 s: unused for 30 s
}

func TestOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Ticks: probe every 10 s, sweep every 60 s (min(Any, Unused)/2).
		c, s, _ := newCache(t, cache.Config{
			Any:           10 * time.Minute,
			Unused:        2 * time.Minute,
			Offline:       10 * time.Minute,
			ProbeInterval: 10 * time.Second,
		})
		s.put(t, "used", "u")
		s.put(t, "idle", "i")
		mustGet(t, c, s, "used", "u", 1)
		time.Sleep(5 * time.Second)
		mustGet(t, c, s, "idle", "i", 2) // idle expires at 125 s
		time.Sleep(60 * time.Second)
		mustGet(t, c, s, "used", "u", 2) // 65 s: used expires at 185 s

		time.Sleep(61 * time.Second) // 126 s
		s.setDown(true)
		if c.Offline() {
			t.Fatal("offline before a probe failed")
		}
		// 130.5 s: the probe at 130 s failed; the store is probed again
		// every second from then on, on the full seconds.
		time.Sleep(4500 * time.Millisecond)
		if !c.Offline() {
			t.Fatal("not offline after a failed probe")
		}
		probes := s.probes.Load()
		if _, err := c.Status(t.Context()); !keystore.IsUnreachable(err) || !errors.Is(err, errDown) {
			t.Fatalf("Status while offline: got %v, want unreachable wrapping the probe error", err)
		}
		if s.probes.Load() != probes {
			t.Fatal("Status probed the store while flagged offline")
		}

		// An entry that had expired when the store went offline is not
		// revived. The miss fails at once, with the probe's error, without
		// reading the store (before fail-fast it read it: 3 reads here).
		if _, err := c.Get(t.Context(), "idle"); !errors.Is(err, errDown) || !keystore.IsUnreachable(err) {
			t.Fatalf("Get(idle) while offline: got %v, want unreachable wrapping the store error", err)
		}
		if n := s.gets.Load(); n != 2 {
			t.Fatalf("Get(idle) while offline read the store: %d reads, want 2", n)
		}
		// One that had not is served past Any and Unused ...
		time.Sleep(5 * time.Minute) // 430.5 s
		mustGet(t, c, s, "used", "u", 2)
		time.Sleep(298 * time.Second) // 728.5 s
		mustGet(t, c, s, "used", "u", 2)
		// ... until Offline has passed since the store went offline (130 s).
		time.Sleep(2 * time.Second) // 730.5 s
		if _, err := c.Get(t.Context(), "used"); !errors.Is(err, errDown) {
			t.Fatalf("Get(used) after the offline period: got %v, want the store error", err)
		}
		if !c.Offline() {
			t.Fatal("offline flag cleared while the store is down")
		}

		s.setDown(false)
		// While offline the store is probed every RecoveryInterval (1 s).
		time.Sleep(1500 * time.Millisecond)
		if c.Offline() {
			t.Fatal("still offline after a successful probe")
		}
		if _, err := c.Status(t.Context()); err != nil {
			t.Fatalf("Status after recovery: %v", err)
		}
		mustGet(t, c, s, "used", "u", 3) // both misses while offline failed fast
	})
}

func TestOfflineAgainStartsNewPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{Any: time.Hour, Unused: time.Hour, Offline: time.Minute, ProbeInterval: 10 * time.Second})
		s.put(t, "k", "v")
		mustGet(t, c, s, "k", "v", 1)
		time.Sleep(5 * time.Second)
		s.setDown(true) // offline from 10 s to 70 s
		// Offline, the store is probed every second: it is online again
		// at 36 s, and probed every 10 s from there.
		time.Sleep(30*time.Second + 500*time.Millisecond)
		s.setDown(false)
		time.Sleep(10 * time.Second)
		if c.Offline() {
			t.Fatal("still offline")
		}
		time.Sleep(time.Hour) // 3645.5 s: k expired by Any
		s.setDown(true)       // offline again at 3646 s
		time.Sleep(10 * time.Second)
		if !c.Offline() {
			t.Fatal("not offline")
		}
		if _, err := c.Get(t.Context(), "k"); !errors.Is(err, errDown) {
			t.Fatalf("Get of an entry expired before the second outage: got %v, want the store error", err)
		}
	})
}

func TestOfflineDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{Any: time.Minute, Unused: time.Hour})
		s.put(t, "k", "v")
		mustGet(t, c, s, "k", "v", 1)
		time.Sleep(5 * time.Second)
		s.setDown(true)
		time.Sleep(10 * time.Second) // default probe interval
		if !c.Offline() {
			t.Fatal("not offline after a failed probe")
		}
		time.Sleep(44 * time.Second) // 59 s
		mustGet(t, c, s, "k", "v", 1)
		time.Sleep(time.Second) // 60 s: Any passed, no grace
		if _, err := c.Get(t.Context(), "k"); !errors.Is(err, errDown) {
			t.Fatalf("Get: got %v, want the store error", err)
		}
	})
}

func TestProbeInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, s, _ := newCache(t, cache.Config{})
		time.Sleep(9 * time.Second)
		if n := s.probes.Load(); n != 0 {
			t.Fatalf("%d probes after 9 s, want 0", n)
		}
		time.Sleep(2 * time.Second)
		if n := s.probes.Load(); n != 1 {
			t.Fatalf("%d probes after 11 s, want 1", n)
		}
		time.Sleep(10 * time.Second)
		if n := s.probes.Load(); n != 2 {
			t.Fatalf("%d probes after 21 s, want 2", n)
		}
	})
}

func TestProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := &hangingStore{}
		c := cache.New(hang, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{ProbeInterval: 10 * time.Second})
		defer c.Close()
		time.Sleep(21 * time.Second) // probe at 10 s times out at 20 s
		if !c.Offline() {
			t.Fatal("a probe that does not answer did not flag the store offline")
		}
	})
}

// hangingStore is a store whose Status answers only when ctx ends.
type hangingStore struct {
	mem.Store
	probes atomic.Int64
}

func (s *hangingStore) Status(ctx context.Context) (keystore.State, error) {
	s.probes.Add(1)
	<-ctx.Done()
	return keystore.State{}, &keystore.UnreachableError{Err: ctx.Err()}
}

func TestStatus(t *testing.T) {
	c, _, _ := newCache(t, cache.Config{})
	state, err := c.Status(t.Context())
	if err != nil || state.Latency != mem.Latency {
		t.Fatalf("Status = %v, %v; want the store's", state, err)
	}
}

func TestErrorsNotCached(t *testing.T) {
	errBad := errors.New("bad record")
	store := new(fakeStore)
	store.put(t, "k", "v")
	fail := true
	c := cache.New(store, func(_ string, v []byte) (string, error) {
		if fail {
			return "", errBad
		}
		return string(v), nil
	}, cache.Config{})
	defer c.Close()

	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, errBad) {
		t.Fatalf("Get with a failing decode: got %v, want errBad", err)
	}
	fail = false
	if v, err := c.Get(t.Context(), "k"); err != nil || v != "v" || store.gets.Load() != 2 {
		t.Fatalf("Get after a decode error = %q, %v after %d reads; want v after 2", v, err, store.gets.Load())
	}

	store.setDown(true)
	if _, err := c.Get(t.Context(), "other"); !errors.Is(err, errDown) {
		t.Fatalf("Get from a failing store: got %v, want errDown", err)
	}
	store.setDown(false)
	if _, err := c.Get(t.Context(), "other"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a missing key: got %v, want keystore.ErrNotFound", err)
	}
	store.put(t, "other", "o")
	if v, err := c.Get(t.Context(), "other"); err != nil || v != "o" {
		t.Fatalf("Get after a not-found = %q, %v; want o", v, err)
	}
}

func TestDelete(t *testing.T) {
	c, s, _ := newCache(t, cache.Config{})
	s.put(t, "k", "v")
	mustGet(t, c, s, "k", "v", 1)
	if err := c.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after Delete: got %v, want keystore.ErrNotFound", err)
	}
	if err := c.Delete(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("second Delete: got %v, want keystore.ErrNotFound", err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after Delete, want 0", c.Len())
	}
}

func TestDeleteFailingStoreEvicts(t *testing.T) {
	// A store that fails after it may have deleted: the entry is dropped
	// anyway, so the next Get asks the store.
	s := &failingDeleteStore{fakeStore: new(fakeStore)}
	s.put(t, "k", "v")
	c := cache.New(s, func(_ string, v []byte) (string, error) { return string(v), nil }, cache.Config{})
	defer c.Close()
	if v, err := c.Get(t.Context(), "k"); err != nil || v != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := c.Delete(t.Context(), "k"); !errors.Is(err, errDown) {
		t.Fatalf("Delete: got %v, want errDown", err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after a failed Delete that deleted: got %v, want keystore.ErrNotFound", err)
	}
}

// failingDeleteStore deletes and then reports an error, as a store whose
// connection breaks before the answer arrives.
type failingDeleteStore struct{ *fakeStore }

func (s *failingDeleteStore) Delete(ctx context.Context, name string) error {
	if err := s.fakeStore.Delete(ctx, name); err != nil {
		return err
	}
	return errDown
}

func TestDeleteDuringRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{})
		s.put(t, "k", "old")
		release := make(chan struct{})
		s.getHook = func(_ context.Context, _ string, call int64) error {
			if call == 1 {
				<-release // the first read has the old value and waits
			}
			return nil
		}
		first := make(chan error, 1)
		go func() {
			p, err := c.Get(context.Background(), "k")
			if err == nil && p.value != "old" {
				err = fmt.Errorf("got %q", p.value)
			}
			first <- err
		}()
		synctest.Wait() // the first read is blocked
		if err := c.Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		// A Get that starts after Delete returned does not join the old read.
		if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get after Delete during a read: got %v, want keystore.ErrNotFound", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("the read that began before Delete: %v", err)
		}
		// The old read did not cache what it read.
		if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get after the old read finished: got %v, want keystore.ErrNotFound", err)
		}
		if c.Len() != 0 {
			t.Fatalf("Len = %d, want 0", c.Len())
		}
	})
}

func TestCreate(t *testing.T) {
	c, s, _ := newCache(t, cache.Config{})
	if err := c.Create(t.Context(), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("Create cached the value")
	}
	mustGet(t, c, s, "k", "v1", 1)
	if err := c.Create(t.Context(), "k", []byte("v2")); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create of existing: got %v, want keystore.ErrExists", err)
	}
	mustGet(t, c, s, "k", "v1", 1) // a failed Create keeps the entry

	// Another node deleted the key; creating it here replaces the entry.
	if err := s.Store.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(t.Context(), "k", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, s, "k", "v3", 2)
}

func TestList(t *testing.T) {
	c, s, _ := newCache(t, cache.Config{})
	s.put(t, "a", "1")
	s.put(t, "b", "2")
	names, next, err := c.List(t.Context(), "", "", 0)
	if err != nil || len(names) != 2 || next != "" {
		t.Fatalf("List = %q, %q, %v", names, next, err)
	}
}

func TestConcurrentMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, decodes := newCache(t, cache.Config{})
		s.put(t, "k", "v")
		release := make(chan struct{})
		s.getHook = func(context.Context, string, int64) error { <-release; return nil }

		const n = 100
		results := make([]*parsed, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = c.Get(context.Background(), "k") })
		}
		synctest.Wait() // all 100 wait for the one read
		if got := s.gets.Load(); got != 1 {
			t.Fatalf("%d store reads for %d concurrent misses, want 1", got, n)
		}
		close(release)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || results[i] != results[0] || results[i].value != "v" {
				t.Fatalf("Get %d = %v, %v; want the shared value", i, results[i], errs[i])
			}
		}
		if s.gets.Load() != 1 || decodes.Load() != 1 {
			t.Fatalf("%d reads and %d decodes, want 1 and 1", s.gets.Load(), decodes.Load())
		}
	})
}

// A caller whose context ends stops waiting, but the read it started goes
// on for the callers still waiting: earlier, the read ran under the first
// caller's context, so its deadline failed everyone who joined it (and they
// read again). Now the read is shared and cancelled only by the last
// caller to leave (TestReadCanceledWhenAllLeave).
func TestCanceledLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{})
		s.put(t, "k", "v")
		release := make(chan struct{})
		readErr := make(chan error, 1)
		s.getHook = func(ctx context.Context, _ string, call int64) error {
			<-release
			readErr <- ctx.Err()
			return nil
		}
		leaderCtx, cancel := context.WithCancel(context.Background())
		leader := make(chan error, 1)
		go func() { _, err := c.Get(leaderCtx, "k"); leader <- err }()
		synctest.Wait()
		follower := make(chan error, 1)
		go func() { _, err := c.Get(context.Background(), "k"); follower <- err }()
		synctest.Wait()
		cancel()
		if err := <-leader; !errors.Is(err, context.Canceled) {
			t.Fatalf("leader: got %v, want context.Canceled", err)
		}
		close(release)
		if err := <-readErr; err != nil {
			t.Fatalf("the shared read was canceled with its first caller: %v", err)
		}
		if err := <-follower; err != nil {
			t.Fatalf("follower with a live context: %v", err)
		}
		if s.gets.Load() != 1 {
			t.Fatalf("%d reads, want 1", s.gets.Load())
		}
	})
}

func TestReadCanceledWhenAllLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{})
		s.put(t, "k", "v")
		readErr := make(chan error, 1)
		s.getHook = func(ctx context.Context, _ string, call int64) error {
			if call == 1 {
				<-ctx.Done()
				readErr <- ctx.Err()
				return ctx.Err()
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if _, err := c.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Get past its deadline: got %v, want context.DeadlineExceeded", err)
				}
			})
		}
		wg.Wait()
		if err := <-readErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("the read nobody waits for: got %v, want context.Canceled", err)
		}
		// The next miss starts a new read instead of joining the canceled one.
		mustGet(t, c, s, "k", "v", 2)
	})
}

// blockingStore is a store whose calls ignore their context: each blocks
// until release is closed.
type blockingStore struct {
	fakeStore
	release chan struct{}
}

func (s *blockingStore) Create(ctx context.Context, name string, value []byte) error {
	<-s.release
	return s.fakeStore.Create(context.Background(), name, value)
}

func (s *blockingStore) Delete(ctx context.Context, name string) error {
	<-s.release
	return s.fakeStore.Delete(context.Background(), name)
}

func (s *blockingStore) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	<-s.release
	return s.fakeStore.List(context.Background(), prefix, continueAt, n)
}

func (s *blockingStore) Status(ctx context.Context) (keystore.State, error) {
	<-s.release
	return s.fakeStore.Status(context.Background())
}

func (s *blockingStore) Get(ctx context.Context, name string) ([]byte, error) {
	<-s.release
	return s.fakeStore.Get(context.Background(), name)
}

// Every method returns at the caller's deadline even if the store ignores
// it; the calls finish later, their effects reach the cache, and Close
// waits for them.
func TestStoreIgnoresDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &blockingStore{release: make(chan struct{})}
		store.put(t, "old", "v")
		c := cache.New(store, func(_ string, v []byte) (string, error) { return string(v), nil }, cache.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		calls := map[string]func() error{
			"Get":    func() error { _, err := c.Get(ctx, "old"); return err },
			"Create": func() error { return c.Create(ctx, "new", []byte("v")) },
			"Delete": func() error { return c.Delete(ctx, "gone") },
			"List":   func() error { _, _, err := c.List(ctx, "", "", 0); return err },
			"Status": func() error { _, err := c.Status(ctx); return err },
		}
		start := time.Now()
		for name, call := range calls {
			if err := call(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: got %v, want context.DeadlineExceeded", name, err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("%s returned after %v, want 1s", name, d)
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while abandoned store calls still ran")
		default:
		}
		close(store.release)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if v, err := store.Store.Get(context.Background(), "new"); err != nil || string(v) != "v" {
			t.Fatalf("the abandoned Create did not complete: %q, %v", v, err)
		}
	})
}

func TestMaxEntries(t *testing.T) {
	clock := newClock()
	c, s, _ := newCache(t, cache.Config{MaxEntries: 8, Any: time.Hour, Unused: time.Hour, Now: clock.Now})
	for i := range 100 {
		s.put(t, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	for i := range 8 {
		clock.Advance(time.Second)
		mustGet(t, c, s, fmt.Sprint("k", i), fmt.Sprint("v", i), int64(i+1))
	}
	clock.Advance(time.Second)
	mustGet(t, c, s, "k0", "v0", 8) // k1 is now the least recently used
	mustGet(t, c, s, "k8", "v8", 9)
	if c.Len() != 8 {
		t.Fatalf("Len = %d, want 8", c.Len())
	}
	mustGet(t, c, s, "k0", "v0", 9)
	mustGet(t, c, s, "k2", "v2", 9)
	mustGet(t, c, s, "k1", "v1", 10) // evicted

	for i := range 100 {
		clock.Advance(time.Millisecond)
		if _, err := c.Get(t.Context(), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		if c.Len() > 8 {
			t.Fatalf("Len = %d, want at most 8", c.Len())
		}
	}
}

func TestMaxEntriesPrefersExpired(t *testing.T) {
	clock := newClock()
	c, s, _ := newCache(t, cache.Config{MaxEntries: 4, Any: time.Hour, Unused: time.Minute, Now: clock.Now})
	for i := range 5 {
		s.put(t, fmt.Sprint("k", i), "v")
	}
	mustGet(t, c, s, "k0", "v", 1)
	mustGet(t, c, s, "k1", "v", 2)
	clock.Advance(30 * time.Second)
	mustGet(t, c, s, "k2", "v", 3)
	mustGet(t, c, s, "k3", "v", 4)
	clock.Advance(31 * time.Second) // k0 and k1 expired
	mustGet(t, c, s, "k4", "v", 5)
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (expired entries dropped, live ones kept)", c.Len())
	}
	mustGet(t, c, s, "k2", "v", 5)
	mustGet(t, c, s, "k3", "v", 5)
}

func TestSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{Any: time.Hour, Unused: 30 * time.Second})
		s.put(t, "k", "v")
		mustGet(t, c, s, "k", "v", 1)
		time.Sleep(46 * time.Second) // sweeps at 15 s, 30 s, 45 s
		if c.Len() != 0 {
			t.Fatalf("Len = %d after the idle period, want 0 (swept without a Get)", c.Len())
		}
	})
}

func TestHitsDuringEviction(t *testing.T) {
	// Run with -race: hits, misses, evictions, deletes and sweeps at once.
	store := new(fakeStore)
	for i := range 64 {
		store.put(t, fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	decode, _ := decoder()
	c := cache.New(store, decode, cache.Config{MaxEntries: 16})
	defer c.Close()

	var wg sync.WaitGroup
	check := func(name, want string) {
		p, err := c.Get(context.Background(), name)
		if err != nil || p.value != want {
			t.Errorf("Get(%s) = %v, %v; want %s", name, p, err, want)
		}
	}
	for g := range 4 {
		wg.Go(func() { // hot keys
			for range 2000 {
				check(fmt.Sprint("k", g), fmt.Sprint("v", g))
			}
		})
		wg.Go(func() { // a stream of misses that forces evictions
			for i := range 1000 {
				n := 4 + (i*7+g)%60
				check(fmt.Sprint("k", n), fmt.Sprint("v", n))
			}
		})
	}
	wg.Go(func() { // churn
		for i := range 300 {
			name := "churn"
			if err := c.Create(context.Background(), name, fmt.Appendf(nil, "c%d", i)); err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			check(name, fmt.Sprint("c", i))
			if err := c.Delete(context.Background(), name); err != nil {
				t.Errorf("Delete: %v", err)
				return
			}
			if _, err := c.Get(context.Background(), name); !errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("Get after Delete: got %v, want keystore.ErrNotFound", err)
			}
		}
	})
	wg.Wait()
	if c.Len() > 16 {
		t.Fatalf("Len = %d, want at most 16", c.Len())
	}
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := new(fakeStore)
		c := cache.New(store, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
		time.Sleep(time.Minute) // probes and sweeps ran
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if !store.closed.Load() {
			t.Fatal("Close did not close the store")
		}
		probes := store.probes.Load()
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		time.Sleep(time.Minute)
		if store.probes.Load() != probes {
			t.Fatal("probes continued after Close")
		}
		// synctest.Test fails if the background goroutine is still alive.
	})
}

func BenchmarkHit(b *testing.B) {
	store := new(mem.Store)
	names := make([]string, 64)
	for i := range names {
		names[i] = fmt.Sprint("key-", i)
		if err := store.Create(context.Background(), names[i], []byte("value")); err != nil {
			b.Fatal(err)
		}
	}
	c := cache.New(store, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
	defer c.Close()
	for _, name := range names {
		if _, err := c.Get(context.Background(), name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if _, err := c.Get(ctx, names[i%len(names)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func TestReplace(t *testing.T) {
	c, s, _ := newCache(t, cache.Config{})
	s.put(t, "k", "v1")
	mustGet(t, c, s, "k", "v1", 1)
	if err := c.Replace(t.Context(), "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, s, "k", "v2", 2) // the cached v1 was dropped
	if err := c.Replace(t.Context(), "k", []byte("v1"), []byte("v3")); !errors.Is(err, keystore.ErrChanged) {
		t.Fatalf("Replace from a stale value: got %v, want keystore.ErrChanged", err)
	}
	mustGet(t, c, s, "k", "v2", 3) // dropped even so: the store may have changed
}

func TestReplaceUnsupported(t *testing.T) {
	// A store without the capability: only the Store methods.
	store := struct{ keystore.Store }{new(mem.Store)}
	c := cache.New(store, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
	defer c.Close()
	if err := c.Create(t.Context(), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Replace(t.Context(), "k", []byte("v1"), []byte("v2")); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Replace on a store that cannot: got %v, want errors.ErrUnsupported", err)
	}
}

func TestRead(t *testing.T) {
	// Read answers what the store holds, not the cache, and caches nothing.
	c, s, decodes := newCache(t, cache.Config{})
	s.put(t, "k", "v")
	mustGet(t, c, s, "k", "v", 1)
	b, err := c.Read(t.Context(), "k")
	if err != nil || string(b) != "v" {
		t.Fatalf("Read = %q, %v; want v", b, err)
	}
	if n := s.gets.Load(); n != 2 {
		t.Fatalf("store reads = %d, want 2 (Read bypasses the cache)", n)
	}
	if n := decodes.Load(); n != 1 {
		t.Fatalf("decodes = %d, want 1 (Read does not decode)", n)
	}
	if _, err := c.Read(t.Context(), "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Read of a missing name: %v, want ErrNotFound", err)
	}
	if _, ok := c.Lookup("missing"); ok || c.Len() != 1 {
		t.Fatalf("Read cached something: Len = %d", c.Len())
	}
}

func TestSoftDeleteEvicts(t *testing.T) {
	// A soft delete through the cache drops the cached key at once: the
	// next Get answers not found, although the record lives on under the
	// tombstone; a restore makes it readable again.
	c, s, _ := newCache(t, cache.Config{})
	s.put(t, "k", "v")
	mustGet(t, c, s, "k", "v", 1)
	ts, err := tombstone.Delete(t.Context(), c, "k", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup("k"); ok {
		t.Fatal("soft-deleted key still cached")
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a soft-deleted key: %v, want ErrNotFound", err)
	}
	if _, err := tombstone.Restore(t.Context(), c, "k", ts.DeletedAt); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(t.Context(), "k"); err != nil || v.value != "v" {
		t.Fatalf("Get after restore = %v, %v", v, err)
	}
}

// TestRenameUnsupported: over a store that cannot rename, the cache's
// Rename says so and changes nothing, so soft deletion copies.
func TestRenameUnsupported(t *testing.T) {
	type copyOnly struct{ keystore.Store }
	st := new(mem.Store)
	c := cache.New(copyOnly{st}, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	if err := c.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, "k", "k2"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Rename = %v, want errors.ErrUnsupported", err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get(k) after an unsupported Rename = %q, %v", v, err)
	}
	if _, err := st.Get(ctx, "k2"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("an unsupported Rename created k2: %v", err)
	}
}
