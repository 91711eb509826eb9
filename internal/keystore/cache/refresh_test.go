package cache_test

import (
	"context"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/keystore/cache"
)

// TestRefreshBounded: Refresh reads the store again at most once per name
// and RefreshInterval, however many callers ask (an attacker sending
// ciphertexts that name unknown key versions makes every request ask).
func TestRefreshBounded(t *testing.T) {
	clock := newClock()
	c, s, _ := newCache(t, cache.Config{Now: clock.Now})
	s.put(t, "k", "v1")
	mustGet(t, c, s, "k", "v1", 1)

	// Changed behind the cache's back (another node rotated the key).
	if err := s.Store.Replace(context.Background(), "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := c.Refresh(t.Context(), "k"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := s.gets.Load(); got != 1 {
		t.Fatalf("refreshes within a second of the read: %d store reads, want 1", got)
	}

	clock.Advance(cache.RefreshInterval)
	for range 50 {
		wg.Go(func() {
			p, err := c.Refresh(t.Context(), "k")
			if err != nil || p.value != "v2" {
				t.Errorf("Refresh = %v, %v; want v2", p, err)
			}
		})
	}
	wg.Wait()
	if got := s.gets.Load(); got != 2 {
		t.Fatalf("after the interval: %d store reads, want 2", got)
	}
	mustGet(t, c, s, "k", "v2", 2)
}
