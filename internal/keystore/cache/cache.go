// Package cache is the key cache that sits in front of every key store. The
// server keeps parsed keys in it, so a request for a cached key touches
// neither the store nor the parser (spec config.md §5).
//
// # Settings
//
// Three durations decide how long a key stays cached:
//
//   - Any (cache.expiry.any, default 5m): a key is read from the store again
//     at the latest Any after it was read. This bounds how long a change made
//     behind the server's back (another KES node deleting or replacing a
//     key) can go unnoticed.
//   - Unused (cache.expiry.unused, default 30s): a key that no request has
//     used for Unused is dropped, so keys that are rarely used do not stay in
//     memory.
//   - Offline (cache.expiry.offline, default 0 = off): if the key store is
//     found offline (see Outages), the server keeps serving the keys it has
//     cached — even past Any and Unused — for up to Offline after the store
//     was found offline. After that, or when the store answers again, Any
//     and Unused apply again. Keys that were not cached when the store went
//     offline cannot be served. With Offline = 0 cached keys expire as usual
//     during an outage.
//
// # Outages
//
// The store counts as offline once the status probe fails, or once
// [Config.Failures] store calls in a row failed as unreachable (an error
// wrapping [*keystore.UnreachableError]; calls that their caller's context
// ended are not counted, and any answer of the store resets the count).
// While it is offline, every call that needs the store (a miss, Create,
// Delete, Replace, List) fails at once with an error wrapping a
// [*keystore.UnreachableError] and the last probe error, instead of
// waiting for a store that does not answer; cached keys are served as
// described under Offline. The probe then runs every
// [Config.RecoveryInterval] instead of every ProbeInterval, and the first
// probe that succeeds puts the store back online: no restart is needed.
// Upstream KES lets every request wait for the store's own retries
// (seconds with Vault) while the store is down.
//
// Unlike upstream KES at HEAD, the defaults are those documented (see the
// spec): Any 5m and Unused 30s, measured per entry rather than by periodic
// whole-cache flushes.
//
// # Consistency
//
// Deleting, creating or replacing a key through the cache removes it from
// the cache, and a read that raced with the change does not put it back. Store errors
// and decode errors are never cached: the next request tries again.
//
// # Deadlines
//
// Every method returns when its context ends, even if the store does not
// honour the context: the store call then goes on alone on a goroutine that
// the cache owns ([Cache.Close] waits for it), and its outcome still updates
// the cache (a Create that succeeds late drops the stale entry). A miss
// starts one store read that concurrent misses of the same name share; a
// caller whose context ends stops waiting for it, and the read itself is
// cancelled only when no caller waits for it any more, so one impatient
// caller never fails the others.
//
// The package imports only the keystore contract.
package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes/internal/keystore"
)

// Defaults applied by [New] to zero (or negative) [Config] fields.
const (
	DefaultAny           = 5 * time.Minute
	DefaultUnused        = 30 * time.Second
	DefaultProbeInterval = 10 * time.Second
	DefaultMaxEntries    = 100_000

	DefaultRecoveryInterval = time.Second
	DefaultFailures         = 3
)

// recoveryTimeout bounds a probe while the store is offline (or
// ProbeInterval, if shorter). A dead store answers such a probe at once
// (connection refused) and a hung one that resumes answers the probe
// waiting for it, so the bound only matters for a store that stays hung;
// it is long enough that a slow but working store is not locked out.
const recoveryTimeout = 5 * time.Second

// touchInterval is how stale an entry's last-use time may get before a hit
// writes it again. Hot keys are read by many cores at once; writing the
// time on every hit would bounce its cache line between them.
const touchInterval = time.Millisecond

// Config configures a [Cache]. The zero value is the documented default
// configuration.
type Config struct {
	// Any is how long an entry may be served after it was read from the
	// store. If zero or negative, DefaultAny is used.
	Any time.Duration

	// Unused is how long an entry may go without a [Cache.Get] before it is
	// dropped. If zero or negative, DefaultUnused is used.
	Unused time.Duration

	// Offline is how long, after the status probe found the store offline,
	// entries that were cached at that moment are served regardless of Any
	// and Unused. If zero or negative, an offline store changes nothing.
	Offline time.Duration

	// ProbeInterval is the time between two store status probes. If zero or
	// negative, DefaultProbeInterval is used. A probe may take at most
	// ProbeInterval.
	ProbeInterval time.Duration

	// RecoveryInterval is the time between two status probes while the
	// store is offline. If zero or negative, DefaultRecoveryInterval is
	// used. Such a probe may take at most 5s (or ProbeInterval, if
	// shorter).
	RecoveryInterval time.Duration

	// Failures is the number of store calls in a row that must fail as
	// unreachable before the store counts as offline without waiting for
	// the next probe. If zero, DefaultFailures is used; if negative, only
	// the probe finds the store offline.
	Failures int

	// MaxEntries bounds the number of cached entries. When the cache is
	// full, expired entries are dropped and then the least recently used
	// eighth of the entries. If zero or negative, DefaultMaxEntries is used.
	MaxEntries int

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// Cache caches the decoded values of a [keystore.Store]. Create one with
// [New]; a Cache is safe for concurrent use and must be closed.
//
// A Cache[[]byte] is itself a [keystore.Store].
type Cache[T any] struct {
	store  keystore.Store
	decode func(name string, value []byte) (T, error)

	anyTTL, unused, offlineTTL int64 // nanoseconds
	probeInterval              time.Duration
	recoveryInterval           time.Duration
	sweepInterval              time.Duration
	maxFailures                int64 // 0: calls never flag the store offline
	maxEntries                 int64
	now                        func() time.Time
	start                      time.Time // clock origin

	entries sync.Map      // name → *entry[T]
	count   atomic.Int64  // entries plus slots reserved by insert
	evictMu sync.Mutex    // one eviction at a time
	epoch   atomic.Uint64 // bumped by every Create, Delete and Replace

	readMu sync.Mutex
	reads  map[string]*read[T] // the store read in flight per name

	// calls counts the goroutines that call the store on behalf of a
	// caller: shared reads and calls that a caller may abandon.
	calls sync.WaitGroup

	offline  atomic.Pointer[offlineState] // nil while online
	failures atomic.Int64                 // unreachable store calls in a row
	tripped  chan struct{}                // wakes run when calls flag the store offline

	cancel    context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var (
	_ keystore.Store    = (*Cache[[]byte])(nil)
	_ keystore.Replacer = (*Cache[[]byte])(nil)
)

type entry[T any] struct {
	value   T
	fetched int64        // clock when read from the store
	used    atomic.Int64 // clock of the last Get that returned it
}

// read is one store read of a name, shared by the callers of Get that
// missed the name while it ran.
type read[T any] struct {
	done    chan struct{} // closed when val and err are set
	val     T
	err     error
	waiters int                // callers waiting; guarded by Cache.readMu
	cancel  context.CancelFunc // cancels the store read
}

type offlineState struct {
	since int64 // clock when the probe failed first
	err   error // the last probe error
}

// New returns a cache of the values of store, decoded by decode, and starts
// its background goroutine (status probe and expiry sweep). The cache owns
// store: [Cache.Close] closes it.
//
// decode is called once per store read of a name; it may keep value. The
// value it returns is shared by all callers of [Cache.Get] and must not be
// modified.
func New[T any](store keystore.Store, decode func(name string, value []byte) (T, error), cfg Config) *Cache[T] {
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	c := &Cache[T]{
		store:         store,
		decode:        decode,
		anyTTL:        int64(orDefault(cfg.Any, DefaultAny)),
		unused:        int64(orDefault(cfg.Unused, DefaultUnused)),
		offlineTTL:    int64(max(cfg.Offline, 0)),
		probeInterval: orDefault(cfg.ProbeInterval, DefaultProbeInterval),
		maxEntries:    int64(cfg.MaxEntries),
		now:           cfg.Now,
		reads:         make(map[string]*read[T]),
		tripped:       make(chan struct{}, 1),
	}
	c.recoveryInterval = orDefault(cfg.RecoveryInterval, DefaultRecoveryInterval)
	switch {
	case cfg.Failures == 0:
		c.maxFailures = DefaultFailures
	case cfg.Failures > 0:
		c.maxFailures = int64(cfg.Failures)
	}
	if c.maxEntries <= 0 {
		c.maxEntries = DefaultMaxEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.start = c.now()
	// The sweep only frees memory: Get checks expiry itself.
	c.sweepInterval = max(time.Duration(min(c.anyTTL, c.unused))/2, time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done.Add(1)
	go c.run(ctx)
	return c
}

// clock returns the time since the cache was created, in nanoseconds. It
// uses the monotonic clock when Now provides one, so wall clock jumps do
// not expire or revive entries.
func (c *Cache[T]) clock() int64 { return int64(c.now().Sub(c.start)) }

// Get returns the decoded value of name. A cached value is returned without
// a store read. Otherwise the store is read and the value decoded and cached;
// concurrent misses of the same name share one store read. Errors of the
// store (keystore.ErrNotFound included) and of decode are returned, not
// cached. If ctx ends first, Get returns an error wrapping ctx.Err().
func (c *Cache[T]) Get(ctx context.Context, name string) (T, error) {
	if v, ok := c.Lookup(name); ok {
		return v, nil
	}
	return c.miss(ctx, name)
}

// Lookup returns the cached value of name without reading the store. ok is
// false if name is not cached or its entry may no longer be served.
func (c *Cache[T]) Lookup(name string) (v T, ok bool) {
	now := c.clock()
	if v, ok := c.entries.Load(name); ok {
		e := v.(*entry[T])
		if c.fresh(e, now) {
			if now-e.used.Load() >= int64(touchInterval) {
				e.used.Store(now)
			}
			return e.value, true
		}
		c.remove(name, e)
	}
	return v, false
}

// fresh reports whether e may be served at clock now.
func (c *Cache[T]) fresh(e *entry[T], now int64) bool {
	if now-e.fetched < c.anyTTL && now-e.used.Load() < c.unused {
		return true
	}
	if c.offlineTTL > 0 {
		if st := c.offline.Load(); st != nil && now-st.since < c.offlineTTL {
			return true
		}
	}
	return false
}

// miss waits for the store read of name, starting one unless one is in
// flight. The read does not end with the context of the caller that
// started it: it runs until it is done or every caller waiting for it has
// left.
func (c *Cache[T]) miss(ctx context.Context, name string) (T, error) {
	if err := c.down(); err != nil {
		var zero T
		return zero, fmt.Errorf("cache: get %q: %w", name, err)
	}
	c.readMu.Lock()
	rd, ok := c.reads[name]
	if !ok {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		rd = &read[T]{done: make(chan struct{}), cancel: cancel}
		c.reads[name] = rd
		c.calls.Go(func() { c.read(rctx, name, rd) })
	}
	rd.waiters++
	c.readMu.Unlock()

	select {
	case <-rd.done:
		return rd.val, rd.err
	case <-ctx.Done():
	}
	c.readMu.Lock()
	rd.waiters--
	last := rd.waiters == 0
	if last && c.reads[name] == rd {
		delete(c.reads, name) // the next miss starts a new read
	}
	c.readMu.Unlock()
	select {
	case <-rd.done: // the answer came with the end of ctx: use it
		return rd.val, rd.err
	default:
	}
	if last {
		rd.cancel()
	}
	var zero T
	return zero, fmt.Errorf("cache: get %q: %w", name, ctx.Err())
}

// read runs the store read rd of name and hands its result to the waiters.
func (c *Cache[T]) read(ctx context.Context, name string, rd *read[T]) {
	rd.val, rd.err = c.fetch(ctx, name)
	rd.cancel()
	c.readMu.Lock()
	if c.reads[name] == rd {
		delete(c.reads, name)
	}
	c.readMu.Unlock()
	close(rd.done)
}

// detach returns f(), which calls the store for a caller with context ctx.
// If ctx can end, f runs on a goroutine of its own and detach returns an
// error wrapping ctx.Err() as soon as ctx ends, even if the store ignores
// ctx; f then finishes alone, and Close waits for it.
func detach[R any](calls *sync.WaitGroup, ctx context.Context, f func() (R, error)) (R, error) {
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   R
		err error
	}
	ch := make(chan result, 1)
	calls.Go(func() {
		v, err := f()
		ch <- result{v, err}
	})
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
	}
	select {
	case r := <-ch: // the answer came with the end of ctx: use it
		return r.v, r.err
	default:
	}
	var zero R
	return zero, fmt.Errorf("cache: key store call abandoned: %w", ctx.Err())
}

// fetch reads, decodes and caches name. It runs once at a time per name.
func (c *Cache[T]) fetch(ctx context.Context, name string) (T, error) {
	// A caller that missed just before the previous fetch stored its entry
	// joins no call, so check again.
	if v, ok := c.entries.Load(name); ok {
		if e := v.(*entry[T]); c.fresh(e, c.clock()) {
			return e.value, nil
		}
	}
	epoch := c.epoch.Load()
	var zero T
	raw, err := c.store.Get(ctx, name)
	c.observe(ctx, err)
	if err != nil {
		return zero, err
	}
	v, err := c.decode(name, raw)
	if err != nil {
		return zero, fmt.Errorf("cache: decode key %q: %w", name, err)
	}
	now := c.clock()
	e := &entry[T]{value: v, fetched: now}
	e.used.Store(now)
	// A Create or Delete since the read began may have changed the key: the
	// value is returned to the callers that asked before, but not cached.
	// The second check catches a Delete whose eviction ran before the
	// insert.
	if c.epoch.Load() == epoch {
		c.insert(name, e)
		if c.epoch.Load() != epoch {
			c.remove(name, e)
		}
	}
	return v, nil
}

// insert caches e under name, evicting entries first if the cache is full.
func (c *Cache[T]) insert(name string, e *entry[T]) {
	for c.count.Add(1) > c.maxEntries {
		c.count.Add(-1)
		if !c.evict() {
			runtime.Gosched() // the slots are reserved by concurrent inserts
		}
	}
	if _, replaced := c.entries.Swap(name, e); replaced {
		c.count.Add(-1)
	}
}

// remove drops e if it is still the entry of name.
func (c *Cache[T]) remove(name string, e *entry[T]) {
	if c.entries.CompareAndDelete(name, e) {
		c.count.Add(-1)
	}
}

// evict drops expired entries and, if that is not enough, the least
// recently used eighth of the entries. It reports whether anything was
// dropped or the cache has room.
func (c *Cache[T]) evict() bool {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	if c.count.Load() < c.maxEntries {
		return true
	}
	type candidate struct {
		name string
		e    *entry[T]
		used int64
	}
	var live []candidate
	dropped := false
	now := c.clock()
	c.entries.Range(func(k, v any) bool {
		name, e := k.(string), v.(*entry[T])
		if c.fresh(e, now) {
			live = append(live, candidate{name, e, e.used.Load()})
		} else {
			c.remove(name, e)
			dropped = true
		}
		return true
	})
	if c.count.Load() < c.maxEntries {
		return true
	}
	slices.SortFunc(live, func(a, b candidate) int { return cmp.Compare(a.used, b.used) })
	for _, cand := range live[:min(len(live), max(1, len(live)/8))] {
		c.remove(cand.name, cand.e)
		dropped = true
	}
	return dropped
}

// invalidate drops name and makes reads in flight not cache it.
func (c *Cache[T]) invalidate(name string) {
	c.epoch.Add(1)
	if _, ok := c.entries.LoadAndDelete(name); ok {
		c.count.Add(-1)
	}
	// Later Gets must not join a read that began before the change.
	c.readMu.Lock()
	delete(c.reads, name)
	c.readMu.Unlock()
}

// RefreshInterval is the least time between two store reads of a name
// that [Cache.Refresh] starts.
const RefreshInterval = time.Second

// Refresh returns the value of name as read from the store after Refresh
// was called. Reads it starts are at least RefreshInterval apart per name:
// if the cached entry was read less than RefreshInterval ago, Refresh
// waits until it is that old (or ctx ends) and reads then, unless a
// concurrent Refresh did meanwhile. A caller that suspects its cached value
// is stale (another node changed the key) thus causes at most one store
// read per name and RefreshInterval, however often it asks; concurrent
// calls share one read as misses of [Cache.Get] do.
func (c *Cache[T]) Refresh(ctx context.Context, name string) (T, error) {
	called := c.clock()
	for {
		p, ok := c.entries.Load(name)
		if !ok {
			return c.miss(ctx, name)
		}
		e := p.(*entry[T])
		now := c.clock()
		if e.fetched > called {
			return e.value, nil // read since the call: fresh enough
		}
		wait := time.Duration(e.fetched + int64(RefreshInterval) - now)
		if wait <= 0 {
			c.remove(name, e)
			return c.miss(ctx, name)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("cache: refresh %q: %w", name, ctx.Err())
		}
	}
}

// Create stores value under name (see [keystore.Store]). The value is not
// cached: the first Get reads it back through the store, as any other key.
func (c *Cache[T]) Create(ctx context.Context, name string, value []byte) error {
	if err := c.down(); err != nil {
		return fmt.Errorf("cache: create %q: %w", name, err)
	}
	if ctx.Done() != nil {
		// A call that ctx abandons still writes value, which the caller
		// owns again once Create returns.
		value = bytes.Clone(value)
	}
	_, err := detach(&c.calls, ctx, func() (struct{}, error) {
		err := c.store.Create(ctx, name, value)
		c.observe(ctx, err)
		if err == nil {
			// Another node may have deleted and this one re-created the key.
			c.invalidate(name)
		}
		return struct{}{}, err
	})
	return err
}

// Delete removes name from the store and the cache. The cache entry is
// dropped even if the store fails, since the store may have deleted it.
func (c *Cache[T]) Delete(ctx context.Context, name string) error {
	if err := c.down(); err != nil {
		return fmt.Errorf("cache: delete %q: %w", name, err)
	}
	_, err := detach(&c.calls, ctx, func() (struct{}, error) {
		err := c.store.Delete(ctx, name)
		c.observe(ctx, err)
		c.invalidate(name)
		return struct{}{}, err
	})
	return err
}

var _ keystore.Renamer = (*Cache[int])(nil)

// Rename moves the value of from to the free name to in the store (see
// [keystore.Renamer]) and drops both names from the cache, also when the
// store fails, since it may have moved the value. It returns an error
// matching errors.ErrUnsupported, changing nothing, if the store is not a
// [keystore.Renamer] (the HSM layer, which binds the name into the
// record, is none).
func (c *Cache[T]) Rename(ctx context.Context, from, to string) error {
	r, ok := c.store.(keystore.Renamer)
	if !ok {
		return fmt.Errorf("cache: rename %q: %w", from, errors.ErrUnsupported)
	}
	if err := c.down(); err != nil {
		return fmt.Errorf("cache: rename %q: %w", from, err)
	}
	_, err := detach(&c.calls, ctx, func() (struct{}, error) {
		err := r.Rename(ctx, from, to)
		c.observe(ctx, err)
		c.invalidate(from)
		c.invalidate(to)
		return struct{}{}, err
	})
	return err
}

// Replace replaces the value of name in the store (see [keystore.Replacer])
// and drops name from the cache, also when the store fails, since it may
// have replaced the value. It returns an error matching
// errors.ErrUnsupported if the store is not a [keystore.Replacer].
func (c *Cache[T]) Replace(ctx context.Context, name string, old, new []byte) error {
	r, ok := c.store.(keystore.Replacer)
	if !ok {
		return fmt.Errorf("cache: replace %q: %w", name, errors.ErrUnsupported)
	}
	if err := c.down(); err != nil {
		return fmt.Errorf("cache: replace %q: %w", name, err)
	}
	if ctx.Done() != nil {
		// A call that ctx abandons still uses the values, which the
		// caller owns again once Replace returns.
		old, new = bytes.Clone(old), bytes.Clone(new)
	}
	_, err := detach(&c.calls, ctx, func() (struct{}, error) {
		err := r.Replace(ctx, name, old, new)
		c.observe(ctx, err)
		c.invalidate(name)
		return struct{}{}, err
	})
	return err
}

// Read returns the value stored under name as the store holds it, without
// decoding or caching it and without looking at the cache: what soft
// deletion copies. Errors are the store's (see [keystore.Store]).
func (c *Cache[T]) Read(ctx context.Context, name string) ([]byte, error) {
	if err := c.down(); err != nil {
		return nil, fmt.Errorf("cache: read %q: %w", name, err)
	}
	return detach(&c.calls, ctx, func() ([]byte, error) {
		b, err := c.store.Get(ctx, name)
		c.observe(ctx, err)
		return b, err
	})
}

// List lists the names in the store (see [keystore.Store]); it is not
// cached.
func (c *Cache[T]) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if err := c.down(); err != nil {
		return nil, "", fmt.Errorf("cache: list: %w", err)
	}
	type page struct {
		names []string
		next  string
	}
	p, err := detach(&c.calls, ctx, func() (page, error) {
		names, next, err := c.store.List(ctx, prefix, continueAt, n)
		c.observe(ctx, err)
		return page{names, next}, err
	})
	return p.names, p.next, err
}

// Status probes the store. While the store counts as offline (see
// [Cache.Offline]), it returns an error wrapping a
// [*keystore.UnreachableError] and the last error without probing.
func (c *Cache[T]) Status(ctx context.Context) (keystore.State, error) {
	if err := c.down(); err != nil {
		return keystore.State{}, err
	}
	return detach(&c.calls, ctx, func() (keystore.State, error) { return c.store.Status(ctx) })
}

// Offline reports whether the store counts as offline: the last status
// probe failed, or Failures store calls in a row failed as unreachable
// since the last probe that succeeded.
func (c *Cache[T]) Offline() bool { return c.offline.Load() != nil }

// down returns the error of a call that needs the store while it is
// offline, and nil while it is online. It only loads an atomic, so
// requests fail fast without contention.
func (c *Cache[T]) down() error {
	st := c.offline.Load()
	if st == nil {
		return nil
	}
	return &keystore.UnreachableError{Err: fmt.Errorf("cache: %w: %w", keystore.ErrOffline, st.err)}
}

// observe feeds the outcome err of a store call made with ctx to the
// failure detector. A call that ctx ended says nothing about the store
// (the client left or the route's deadline passed; a hung store is the
// probe's to find). Any answer of the store, an error included, shows it
// is reachable.
func (c *Cache[T]) observe(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !keystore.IsUnreachable(err) {
		if c.failures.Load() != 0 { // no write on the common path
			c.failures.Store(0)
		}
		return
	}
	if c.maxFailures > 0 && c.failures.Add(1) >= c.maxFailures && c.markOffline(err) {
		select {
		case c.tripped <- struct{}{}:
		default:
		}
	}
}

// markOffline flags the store offline from now on, unless it is already,
// and reports whether it did.
func (c *Cache[T]) markOffline(err error) bool {
	if c.offline.Load() != nil {
		return false
	}
	// Entries already expired now are not revived by the grace period:
	// drop them before raising the flag.
	now := c.clock()
	c.sweep(now)
	return c.offline.CompareAndSwap(nil, &offlineState{since: now, err: err})
}

// Len returns the number of cached entries, including expired ones not yet
// dropped.
func (c *Cache[T]) Len() int {
	n := 0
	c.entries.Range(func(any, any) bool { n++; return true })
	return n
}

// Close stops the background goroutine, waits for it and for the store
// calls that callers abandoned, and closes the store. Later calls return
// the first call's result. No other method may be called once Close began.
func (c *Cache[T]) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.done.Wait()
		c.calls.Wait()
		c.closeErr = c.store.Close()
	})
	return c.closeErr
}

func (c *Cache[T]) run(ctx context.Context) {
	defer c.done.Done()
	probe := time.NewTimer(c.probeInterval)
	defer probe.Stop()
	sweep := time.NewTicker(c.sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.tripped:
			// Store calls found the store offline: watch for its
			// recovery from now on.
			probe.Reset(c.recoveryInterval)
		case <-probe.C:
			c.probe(ctx)
			if c.offline.Load() != nil {
				probe.Reset(c.recoveryInterval)
			} else {
				probe.Reset(c.probeInterval)
			}
		case <-sweep.C:
			c.sweep(c.clock())
		}
	}
}

// probe calls the store's Status and sets or clears the offline flag.
func (c *Cache[T]) probe(ctx context.Context) {
	timeout := c.probeInterval
	if c.offline.Load() != nil {
		timeout = min(timeout, recoveryTimeout)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	// A store that ignores pctx must not stop the sweeps.
	_, err := detach(&c.calls, pctx, func() (keystore.State, error) { return c.store.Status(pctx) })
	cancel()
	if ctx.Err() != nil {
		return // closing
	}
	if err == nil {
		c.failures.Store(0)
		c.offline.Store(nil)
		return
	}
	if st := c.offline.Load(); st != nil {
		c.offline.Store(&offlineState{since: st.since, err: err})
		return
	}
	c.markOffline(err)
}

// sweep drops the entries that may not be served at clock now.
func (c *Cache[T]) sweep(now int64) {
	c.entries.Range(func(k, v any) bool {
		if e := v.(*entry[T]); !c.fresh(e, now) {
			c.remove(k.(string), e)
		}
		return true
	})
}
