package cache_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/keystore/cache"
)

// TestRefreshBounded: Refresh reads the store again at most once per name
// and RefreshInterval, however many callers ask (an attacker sending
// ciphertexts that name unknown key versions makes every request ask),
// and every caller gets a value read after it asked.
func TestRefreshBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s, _ := newCache(t, cache.Config{})
		s.put(t, "k", "v1")
		mustGet(t, c, s, "k", "v1", 1)

		// Changed behind the cache's back (another node rotated the key).
		if err := s.Store.Replace(context.Background(), "k", []byte("v1"), []byte("v2")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				p, err := c.Refresh(t.Context(), "k")
				if err != nil || p.value != "v2" {
					t.Errorf("Refresh = %v, %v; want v2", p, err)
				}
			})
		}
		wg.Wait()
		// The entry was read at start: the refresh waited for the interval.
		if d := time.Since(start); d != cache.RefreshInterval {
			t.Fatalf("refreshes waited %v, want %v", d, cache.RefreshInterval)
		}
		if got := s.gets.Load(); got != 2 {
			t.Fatalf("50 refreshes: %d store reads, want 2", got)
		}

		// Half a second later, another change: the next refresh waits
		// for the rest of the interval, then reads once.
		time.Sleep(cache.RefreshInterval / 2)
		if err := s.Store.Replace(context.Background(), "k", []byte("v2"), []byte("v3")); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			wg.Go(func() {
				p, err := c.Refresh(t.Context(), "k")
				if err != nil || p.value != "v3" {
					t.Errorf("Refresh = %v, %v; want v3", p, err)
				}
			})
		}
		wg.Wait()
		if got := s.gets.Load(); got != 3 {
			t.Fatalf("after the interval: %d store reads, want 3", got)
		}
		mustGet(t, c, s, "k", "v3", 3)

		// A caller whose context ends stops waiting.
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		if _, err := c.Refresh(ctx, "k"); err == nil {
			t.Fatal("Refresh with an ended context succeeded")
		}
	})
}
