package ratelimit_test

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/ratelimit"
)

// clock is a fake clock that only moves when the test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRate sends requests evenly over a window of fake time, faster than the
// limit, and counts the allowed ones: burst + rate × window, and for each
// refusal a wait that ends when the next token is there.
func TestRate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		lim    ratelimit.Limit
		every  time.Duration // one request per
		window time.Duration
	}{
		{"5/s burst 10", ratelimit.Limit{PerSecond: 5, Burst: 10}, 10 * time.Millisecond, 10 * time.Second},
		{"100/s burst 1", ratelimit.Limit{PerSecond: 100, Burst: 1}, time.Millisecond, 2 * time.Second},
		{"0.5/s burst 3", ratelimit.Limit{PerSecond: 0.5, Burst: 3}, 100 * time.Millisecond, 20 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			l := ratelimit.NewLimiter(0)
			allowed := 0
			for elapsed := time.Duration(0); elapsed < tt.window; elapsed += tt.every {
				ok, wait := l.Allow("client", tt.lim, c.Now())
				if ok {
					allowed++
				} else {
					// The wait ends when a token is back: not earlier,
					// and at most one request interval of rounding later.
					maxWait := time.Duration(float64(time.Second) / tt.lim.PerSecond)
					if wait <= 0 || wait > maxWait {
						t.Fatalf("at %v: wait %v, want in (0, %v]", elapsed, wait, maxWait)
					}
				}
				c.Add(tt.every)
			}
			want := float64(tt.lim.Burst) + tt.lim.PerSecond*tt.window.Seconds()
			if math.Abs(float64(allowed)-want) > 1 {
				t.Errorf("allowed %d requests in %v, want %.0f ± 1 (burst + rate × time)", allowed, tt.window, want)
			}
		})
	}
}

// TestWaitIsExact checks that a refused client that waits what Allow said
// is allowed, and one that comes back a little earlier is not.
func TestWaitIsExact(t *testing.T) {
	c := newClock()
	l := ratelimit.NewLimiter(0)
	lim := ratelimit.Limit{PerSecond: 4, Burst: 2}
	for range 2 {
		if ok, _ := l.Allow("a", lim, c.Now()); !ok {
			t.Fatal("burst refused")
		}
	}
	ok, wait := l.Allow("a", lim, c.Now())
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%v, want refused for 250ms", ok, wait)
	}
	c.Add(wait - time.Millisecond)
	if ok, _ := l.Allow("a", lim, c.Now()); ok {
		t.Fatal("allowed before the wait was over")
	}
	c.Add(time.Millisecond)
	if ok, _ := l.Allow("a", lim, c.Now()); !ok {
		t.Fatal("refused after the wait")
	}
}

// TestIdentitiesApart checks that one identity's empty bucket does not touch
// another's.
func TestIdentitiesApart(t *testing.T) {
	c := newClock()
	l := ratelimit.NewLimiter(0)
	lim := ratelimit.Limit{PerSecond: 1, Burst: 3}
	for range 10 {
		l.Allow("noisy", lim, c.Now())
	}
	for i := range 3 {
		if ok, _ := l.Allow("quiet", lim, c.Now()); !ok {
			t.Fatalf("quiet request %d refused after another identity emptied its bucket", i)
		}
	}
}

// TestLimitChanges checks that a bucket follows a new limit (a reload, or
// an identity assigned to another policy) and keeps its tokens.
func TestLimitChanges(t *testing.T) {
	c := newClock()
	l := ratelimit.NewLimiter(0)
	slow := ratelimit.Limit{PerSecond: 1, Burst: 2}
	for range 2 {
		l.Allow("a", slow, c.Now())
	}
	if ok, _ := l.Allow("a", slow, c.Now()); ok {
		t.Fatal("allowed past the burst")
	}
	// A new limit applies from the moment it is set: at 10/s, 100 ms
	// later a token is back, where 1/s would have given a tenth.
	fast := ratelimit.Limit{PerSecond: 10, Burst: 2}
	if ok, _ := l.Allow("a", fast, c.Now()); ok {
		t.Fatal("new limit: allowed at once with an empty bucket")
	}
	c.Add(100 * time.Millisecond)
	if ok, _ := l.Allow("a", fast, c.Now()); !ok {
		t.Fatal("new limit: refused after 100 ms")
	}
	// A smaller burst caps the tokens a long pause gives.
	c.Add(time.Hour)
	one := ratelimit.Limit{PerSecond: 10, Burst: 1}
	if ok, _ := l.Allow("a", one, c.Now()); !ok {
		t.Fatal("burst 1: first request refused")
	}
	if ok, _ := l.Allow("a", one, c.Now()); ok {
		t.Fatal("burst 1: second request allowed")
	}
}

// TestMemoryBound creates buckets for far more identities than the limiter
// may keep, as an attacker with many certificates assigned to policies
// would, and checks the bound, that full buckets go first and that an
// evicted identity comes back with a fresh bucket.
func TestMemoryBound(t *testing.T) {
	c := newClock()
	const max = 1024
	l := ratelimit.NewLimiter(max)
	lim := ratelimit.Limit{PerSecond: 1, Burst: 1}
	// Busy identities: their buckets are empty, never idle.
	for i := range 10 * max {
		l.Allow(fmt.Sprintf("busy-%d", i), lim, c.Now())
		if n := l.Len(); n > max {
			t.Fatalf("%d buckets after %d identities, want at most %d", n, i+1, max)
		}
	}
	// Once the buckets have refilled (idle clients), new identities take
	// their places first.
	c.Add(time.Second)
	for i := range max {
		l.Allow(fmt.Sprintf("new-%d", i), lim, c.Now())
	}
	if n := l.Len(); n > max || n < max/2 {
		t.Fatalf("%d buckets, want between %d and %d", n, max/2, max)
	}
}

// TestConcurrent hammers one limiter from many goroutines (run with -race):
// over all identities together no more than burst + rate × time is allowed.
func TestConcurrent(t *testing.T) {
	c := newClock()
	l := ratelimit.NewLimiter(0)
	lim := ratelimit.Limit{PerSecond: 1, Burst: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[string]int{}
	for g := range 8 {
		wg.Go(func() {
			id := fmt.Sprintf("id-%d", g%4)
			for range 1000 {
				if ok, _ := l.Allow(id, lim, c.Now()); ok {
					mu.Lock()
					allowed[id]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for id, n := range allowed {
		if n != lim.Burst {
			t.Errorf("%s: %d allowed at one instant, want the burst %d", id, n, lim.Burst)
		}
	}
	if len(allowed) != 4 {
		t.Errorf("%d identities got requests through, want 4", len(allowed))
	}
}

func TestConfigFor(t *testing.T) {
	def := &ratelimit.Limit{PerSecond: 10, Burst: 20}
	app := &ratelimit.Limit{PerSecond: 1, Burst: 2}
	admin := &ratelimit.Limit{PerSecond: 100, Burst: 100}
	c := &ratelimit.Config{Default: def, Admin: admin, Policies: map[string]*ratelimit.Limit{"app": app, "minio": nil}}
	for _, tt := range []struct {
		admin  bool
		policy string
		want   *ratelimit.Limit
		source string
	}{
		{false, "app", app, "policy.app"},
		{false, "minio", nil, "policy.minio"}, // rate_limit: off
		{false, "other", def, "api"},
		{true, "", admin, "admin"},
	} {
		got, src := c.For(tt.admin, tt.policy)
		if got != tt.want || src != tt.source {
			t.Errorf("For(%v, %q) = %v, %q; want %v, %q", tt.admin, tt.policy, got, src, tt.want, tt.source)
		}
	}
	if l, _ := (&ratelimit.Config{Default: def}).For(true, ""); l != nil {
		t.Error("the default limits the admin")
	}
	for _, tt := range []struct {
		c    *ratelimit.Config
		want bool
	}{
		{nil, false},
		{&ratelimit.Config{}, false},
		{&ratelimit.Config{Policies: map[string]*ratelimit.Limit{"a": nil}}, false},
		{&ratelimit.Config{Policies: map[string]*ratelimit.Limit{"a": app}}, true},
		{&ratelimit.Config{Admin: admin}, true},
		{&ratelimit.Config{Default: def}, true},
	} {
		if got := tt.c.Enabled(); got != tt.want {
			t.Errorf("%+v.Enabled() = %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		l  ratelimit.Limit
		ok bool
	}{
		{ratelimit.Limit{PerSecond: 5, Burst: 10}, true},
		{ratelimit.Limit{PerSecond: 0.01, Burst: 1}, true},
		{ratelimit.Limit{PerSecond: 0, Burst: 1}, false},
		{ratelimit.Limit{PerSecond: -1, Burst: 1}, false},
		{ratelimit.Limit{PerSecond: math.NaN(), Burst: 1}, false},
		{ratelimit.Limit{PerSecond: math.Inf(1), Burst: 1}, false},
		{ratelimit.Limit{PerSecond: 5, Burst: 0}, false},
	} {
		if err := tt.l.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.l, err, tt.ok)
		}
	}
	for _, tt := range []struct {
		rate float64
		want int
	}{{0.1, 1}, {1, 1}, {2.5, 3}, {100, 100}} {
		if got := ratelimit.DefaultBurst(tt.rate); got != tt.want {
			t.Errorf("DefaultBurst(%g) = %d, want %d", tt.rate, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want int
	}{{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {90 * time.Second, 90}} {
		if got := ratelimit.RetryAfter(tt.wait); got != tt.want {
			t.Errorf("RetryAfter(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

const benchID = "9fa78a6c1e5e9b1d0a5f2f4cd0b7b3e1a8a6f0e3d1c2b4a5968778695a4b3c2d"

func BenchmarkAllow(b *testing.B) {
	l := ratelimit.NewLimiter(0)
	lim := ratelimit.Limit{PerSecond: 1e9, Burst: 1e9}
	now := time.Now()
	for b.Loop() {
		l.Allow(benchID, lim, now)
	}
}

// BenchmarkAllowParallel: every goroutine on the same identity, the worst
// case for the locks.
func BenchmarkAllowParallel(b *testing.B) {
	l := ratelimit.NewLimiter(0)
	lim := ratelimit.Limit{PerSecond: 1e9, Burst: 1e9}
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(benchID, lim, now)
		}
	})
}
