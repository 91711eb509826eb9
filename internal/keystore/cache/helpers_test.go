package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
)

// errDown is what the fake store answers while it is "down".
var errDown = &keystore.UnreachableError{Err: errors.New("connection refused")}

// fakeStore is an in-memory store that counts reads and probes and can be
// taken down or made to block.
type fakeStore struct {
	mem.Store
	gets, probes atomic.Int64
	closed       atomic.Bool

	mu        sync.Mutex
	statusErr error
	getErr    error
	// getHook, if set, runs after each read of the store; its error, if
	// not nil, is returned instead of the value.
	getHook func(ctx context.Context, name string, call int64) error
}

func (s *fakeStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusErr, s.getErr = nil, nil
	if down {
		s.statusErr, s.getErr = errDown, errDown
	}
}

func (s *fakeStore) Status(ctx context.Context) (keystore.State, error) {
	s.probes.Add(1)
	s.mu.Lock()
	err := s.statusErr
	s.mu.Unlock()
	if err != nil {
		return keystore.State{}, err
	}
	return s.Store.Status(ctx)
}

func (s *fakeStore) Get(ctx context.Context, name string) ([]byte, error) {
	call := s.gets.Add(1)
	s.mu.Lock()
	err, hook := s.getErr, s.getHook
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v, err := s.Store.Get(ctx, name)
	if hook != nil {
		if herr := hook(ctx, name, call); herr != nil {
			return nil, herr
		}
	}
	return v, err
}

func (s *fakeStore) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *fakeStore) put(t *testing.T, name, value string) {
	t.Helper()
	if err := s.Store.Create(context.Background(), name, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// parsed is what the tests cache: a decoded record.
type parsed struct{ value string }

// decoder returns a decode function and its call counter.
func decoder() (func(string, []byte) (*parsed, error), *atomic.Int64) {
	var n atomic.Int64
	return func(_ string, v []byte) (*parsed, error) {
		n.Add(1)
		return &parsed{value: string(v)}, nil
	}, &n
}

// fakeClock is an injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newCache returns a cache over a new fake store, closed at the end of the
// test.
func newCache(t *testing.T, cfg cache.Config) (*cache.Cache[*parsed], *fakeStore, *atomic.Int64) {
	t.Helper()
	store := new(fakeStore)
	decode, decodes := decoder()
	c := cache.New(store, decode, cfg)
	t.Cleanup(func() { c.Close() })
	return c, store, decodes
}

// mustGet asserts that Get of name returns value, and that the store was
// read reads times in total.
func mustGet(t *testing.T, c *cache.Cache[*parsed], s *fakeStore, name, value string, reads int64) {
	t.Helper()
	p, err := c.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	if p.value != value {
		t.Fatalf("Get(%s) = %q, want %q", name, p.value, value)
	}
	if got := s.gets.Load(); got != reads {
		t.Fatalf("after Get(%s): %d store reads, want %d", name, got, reads)
	}
}
