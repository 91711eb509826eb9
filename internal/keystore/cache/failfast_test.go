package cache_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
)

// setGetErr makes the fake store's reads fail with err (nil: succeed)
// while its status probe keeps answering.
func (s *fakeStore) setGetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.getErr = err
}

// TestFailFastAfterFailures: Failures unreachable calls in a row flag the
// store offline without waiting for the probe; from then on every call
// that needs the store fails at once without reaching it, cached keys are
// served, and the first successful probe (RecoveryInterval later) ends it.
func TestFailFastAfterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{Offline: time.Minute, Failures: 3})
		s.put(t, "cached", "c")
		s.put(t, "other", "o")
		mustGet(t, c, s, "cached", "c", 1)

		s.setGetErr(errDown)
		for i := range 3 {
			if c.Offline() {
				t.Fatalf("offline after %d failures, want 3", i)
			}
			if _, err := c.Get(t.Context(), "other"); !errors.Is(err, errDown) {
				t.Fatalf("Get %d: got %v, want errDown", i, err)
			}
		}
		if !c.Offline() {
			t.Fatal("not offline after 3 unreachable calls in a row")
		}
		reads := s.gets.Load()
		if _, err := c.Get(t.Context(), "other"); !keystore.IsUnreachable(err) || !errors.Is(err, errDown) {
			t.Fatalf("Get while offline: got %v, want unreachable wrapping the last error", err)
		}
		if err := c.Create(t.Context(), "new", []byte("n")); !keystore.IsUnreachable(err) {
			t.Fatalf("Create while offline: got %v, want unreachable", err)
		}
		if err := c.Delete(t.Context(), "other"); !keystore.IsUnreachable(err) {
			t.Fatalf("Delete while offline: got %v, want unreachable", err)
		}
		if err := c.Replace(t.Context(), "other", []byte("o"), []byte("x")); !keystore.IsUnreachable(err) {
			t.Fatalf("Replace while offline: got %v, want unreachable", err)
		}
		if _, _, err := c.List(t.Context(), "", "", 0); !keystore.IsUnreachable(err) {
			t.Fatalf("List while offline: got %v, want unreachable", err)
		}
		if _, err := c.Status(t.Context()); !keystore.IsUnreachable(err) {
			t.Fatalf("Status while offline: got %v, want unreachable", err)
		}
		if s.gets.Load() != reads {
			t.Fatal("a Get while offline read the store")
		}
		for _, name := range []string{"new", "other"} {
			if _, err := s.Store.Get(t.Context(), name); (name == "new") != errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("a call while offline changed %q in the store: %v", name, err)
			}
		}
		mustGet(t, c, s, "cached", "c", reads) // served from the cache

		// The probe answers (only reads failed): the store is online
		// again one RecoveryInterval after it was flagged.
		s.setGetErr(nil)
		time.Sleep(cache.DefaultRecoveryInterval + time.Millisecond)
		if c.Offline() {
			t.Fatal("still offline after a successful probe")
		}
		mustGet(t, c, s, "other", "o", reads+1)
		if err := c.Create(t.Context(), "new", []byte("n")); err != nil {
			t.Fatalf("Create after recovery: %v", err)
		}
	})
}

// TestFailuresMustBeConsecutive: an answer of the store between two
// unreachable failures, even an error, restarts the count, so scattered
// network errors do not take the store offline.
func TestFailuresMustBeConsecutive(t *testing.T) {
	c, s, _ := newCache(t, cache.Config{Failures: 3})
	s.put(t, "k", "v")
	for range 5 {
		s.setGetErr(errDown)
		for range 2 {
			if _, err := c.Get(t.Context(), "k"); !errors.Is(err, errDown) {
				t.Fatalf("Get: got %v, want errDown", err)
			}
		}
		s.setGetErr(nil)
		if _, err := c.Get(t.Context(), "missing"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get(missing): got %v, want keystore.ErrNotFound", err)
		}
	}
	if c.Offline() {
		t.Fatal("offline after failures that were never 3 in a row")
	}
}

// TestFailuresIgnoreEndedCalls: calls that their context ended (a client
// that left, a route deadline) do not count, since they say nothing about
// the store; a negative Failures leaves detection to the probe.
func TestFailuresIgnoreEndedCalls(t *testing.T) {
	t.Run("ended", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s, _ := newCache(t, cache.Config{Failures: 1})
			s.put(t, "k", "v")
			// A store that honours its context and reports its end as
			// unreachable, as the REST stores do.
			s.getHook = func(ctx context.Context, _ string, _ int64) error {
				<-ctx.Done()
				return &keystore.UnreachableError{Err: ctx.Err()}
			}
			for range 3 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				if _, err := c.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Get past its deadline: got %v, want context.DeadlineExceeded", err)
				}
				cancel()
				synctest.Wait() // the abandoned read has ended
			}
			if c.Offline() {
				t.Fatal("calls that their context ended flagged the store offline")
			}
		})
	})
	t.Run("disabled", func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{Failures: -1})
		s.put(t, "k", "v")
		s.setGetErr(errDown)
		for range 10 {
			if _, err := c.Get(t.Context(), "k"); !errors.Is(err, errDown) {
				t.Fatalf("Get: got %v, want errDown", err)
			}
		}
		if c.Offline() {
			t.Fatal("offline with Failures < 0")
		}
	})
}

// TestRecoveryProbe: with cache.expiry.offline 0 (the default) the probe
// still finds the store offline, requests then fail fast, and while it is
// offline the store is probed every RecoveryInterval, so recovery is seen
// within a second instead of the 10 s probe interval.
func TestRecoveryProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{})
		s.put(t, "k", "v")
		s.setDown(true)
		time.Sleep(cache.DefaultProbeInterval + time.Millisecond) // the probe at 10 s failed
		if !c.Offline() {
			t.Fatal("not offline after a failed probe")
		}
		reads := s.gets.Load()
		if _, err := c.Get(t.Context(), "k"); !keystore.IsUnreachable(err) || s.gets.Load() != reads {
			t.Fatalf("Get while offline: got %v after %d reads; want unreachable without a read", err, s.gets.Load()-reads)
		}
		probes := s.probes.Load()
		time.Sleep(10*cache.DefaultRecoveryInterval + time.Millisecond)
		if n := s.probes.Load() - probes; n != 10 {
			t.Fatalf("%d probes in 10 recovery intervals while offline, want 10", n)
		}
		s.setDown(false)
		time.Sleep(cache.DefaultRecoveryInterval)
		if c.Offline() {
			t.Fatal("still offline a recovery interval after the store came back")
		}
		mustGet(t, c, s, "k", "v", reads+1)
		// Online again (21 s), the probe interval applies again: the next
		// probe is at 31 s.
		probes = s.probes.Load()
		time.Sleep(cache.DefaultProbeInterval - 100*time.Millisecond)
		if n := s.probes.Load() - probes; n != 0 {
			t.Fatalf("%d probes within a probe interval while online, want 0", n)
		}
	})
}

// TestRecoveryProbeTimeout: while the store is offline a probe that hangs
// is given up after 5 s (not the probe interval), so a store that resumes
// answering is found soon.
func TestRecoveryProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := &hangingStore{}
		c := cache.New(hang, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{ProbeInterval: time.Minute})
		defer c.Close()
		time.Sleep(2*time.Minute + time.Millisecond) // the probe at 1m timed out at 2m
		if !c.Offline() {
			t.Fatal("not offline after a probe that timed out")
		}
		start := time.Now()
		// The next probe starts a recovery interval later and ends after
		// 5 s; the one after that starts a second later.
		time.Sleep(time.Second + 5*time.Second + time.Second + time.Millisecond)
		if n := hang.probes.Load(); n != 3 {
			t.Fatalf("%d probes %v after going offline, want 3 (1 + 2 recovery probes of 5 s)", n, time.Since(start))
		}
	})
}
