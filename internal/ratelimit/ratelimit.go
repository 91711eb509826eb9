// Package ratelimit holds the request rate limits of the server (an OpenKES
// extension, docs/rate-limits.md): which limit applies to an identity
// ([Config], what the configuration file sets) and the token buckets, one
// per identity, that enforce it ([Limiter]).
//
// The buckets are those of golang.org/x/time/rate. This package is a leaf
// that the configuration file and the server share: it imports nothing of
// this module.
package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Burst requests at once, then PerSecond requests a
// second on average.
type Limit struct {
	// PerSecond is the rate at which the bucket refills, in requests a
	// second. It must be positive and finite; below 1 it allows a request
	// every 1/PerSecond seconds.
	PerSecond float64

	// Burst is the size of the bucket: how many requests a client that was
	// idle may send at once. It must be at least 1.
	Burst int
}

// Bounds of a [Limit], checked by [Limit.Validate].
const (
	// MinPerSecond is one request a day: any slower limit is a typo.
	MinPerSecond = 1.0 / (24 * 60 * 60)
	// MaxPerSecond and MaxBurst are far above what one server answers.
	MaxPerSecond = 1e9
	MaxBurst     = 1_000_000_000
)

// Validate reports whether l is a usable limit.
func (l Limit) Validate() error {
	switch {
	case math.IsNaN(l.PerSecond) || l.PerSecond < MinPerSecond || l.PerSecond > MaxPerSecond:
		return fmt.Errorf("requests_per_second must be between %g and %g", MinPerSecond, float64(MaxPerSecond))
	case l.Burst < 1 || l.Burst > MaxBurst:
		return fmt.Errorf("burst must be between 1 and %d", MaxBurst)
	}
	return nil
}

// DefaultBurst is the burst of a limit that gives only its rate: one
// second's worth of requests, at least 1.
func DefaultBurst(perSecond float64) int {
	return int(min(MaxBurst, max(1, math.Ceil(perSecond))))
}

// Config says which [Limit] applies to an identity. The zero value limits
// nobody. A Config must not be modified once handed to the server; a reload
// hands it a new one.
type Config struct {
	// Default (api.rate_limit) applies to every identity assigned to a
	// policy that has no entry in Policies. Nil means no limit.
	Default *Limit

	// Admin (admin.rate_limit) applies to the admin identity. Nil means
	// the admin is not limited; Default never applies to it.
	Admin *Limit

	// Policies (policy.<name>.rate_limit) maps a policy name to the limit
	// of every identity assigned to it, each identity with a bucket of its
	// own. A nil value ("off") exempts the policy from Default. Policies
	// are matched by name, so an ephemeral policy that replaces a
	// configured one of the same name keeps its limit.
	Policies map[string]*Limit
}

// Enabled reports whether c limits anybody.
func (c *Config) Enabled() bool {
	if c == nil {
		return false
	}
	if c.Default != nil || c.Admin != nil {
		return true
	}
	for _, l := range c.Policies {
		if l != nil {
			return true
		}
	}
	return false
}

// For returns the limit of an identity: of the admin if admin is set,
// otherwise of an identity assigned to the named policy. source names the
// configuration key the limit comes from, for the metrics: "admin",
// "api" or "policy.<name>". A nil limit means the identity is not limited.
func (c *Config) For(admin bool, policy string) (l *Limit, source string) {
	switch {
	case c == nil:
		return nil, ""
	case admin:
		return c.Admin, "admin"
	}
	if l, ok := c.Policies[policy]; ok {
		return l, "policy." + policy
	}
	return c.Default, "api"
}

// Limiter keeps one token bucket per identity. Buckets are kept in shards,
// each with its own mutex, so that requests of different identities rarely
// wait for each other and no lock spans the whole table.
//
// The table holds at most Max buckets. A bucket that is full (its client
// was idle long enough to refill it) is the same as a new one, so when a
// shard is full its full buckets are dropped; if none is, an arbitrary one
// is, and its client starts again with a full bucket: the memory bound
// wins over the exactness of one client's limit.
//
// A Limiter must be created with [NewLimiter]. It is safe for concurrent
// use.
type Limiter struct {
	seed   maphash.Seed
	perCap int // buckets per shard
	shards [shardCount]shard
}

// shardCount is the number of shards: more than the cores of a typical
// server, so that two requests rarely need the same shard's lock.
const shardCount = 64

// DefaultMax is the number of buckets a [Limiter] keeps at most when
// [NewLimiter] is given no other bound. A bucket costs about 300 bytes with
// its identity and map entry, so the table stays under 5 MB; only the
// admin and identities assigned to a policy get buckets, which are
// configured or written by the admin, so a real server has far fewer.
const DefaultMax = 16384

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim   *rate.Limiter
	limit Limit // what lim was last set to; under the shard's mutex
}

// NewLimiter returns a Limiter that keeps at most max buckets (rounded up
// to a multiple of its shard count); max ≤ 0 means [DefaultMax].
func NewLimiter(max int) *Limiter {
	if max <= 0 {
		max = DefaultMax
	}
	l := &Limiter{seed: maphash.MakeSeed(), perCap: (max + shardCount - 1) / shardCount}
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l
}

// Allow takes a token from the bucket of id at time now, which is created
// full with limit lim if id has none. A bucket made with another limit (the
// configuration was reloaded, or id was assigned another policy) is set to
// lim and keeps its tokens. If the bucket is empty, Allow returns false and
// how long until it holds a token again.
//
// now is the caller's: the server passes the time its request started,
// which it has already read (reading the clock costs about 200 ns on a
// virtual machine, more than the rest of Allow). Times should not go
// backwards by much; a bucket treats an earlier time as no time passed.
func (l *Limiter) Allow(id string, lim Limit, now time.Time) (ok bool, wait time.Duration) {
	s := &l.shards[maphash.String(l.seed, id)%shardCount]
	s.mu.Lock()
	b := s.buckets[id]
	if b == nil {
		b = s.add(id, lim, now, l.perCap)
	} else if b.limit != lim {
		b.lim.SetLimitAt(now, rate.Limit(lim.PerSecond))
		b.lim.SetBurstAt(now, lim.Burst)
		b.limit = lim
	}
	s.mu.Unlock()
	// The bucket has a mutex of its own: the shard's is not held while
	// it is used.
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / lim.PerSecond * float64(time.Second)))
}

// add puts a new full bucket for id into s, first making room if s holds
// perCap buckets. s.mu must be held.
func (s *shard) add(id string, lim Limit, now time.Time, perCap int) *bucket {
	if len(s.buckets) >= perCap {
		for k, b := range s.buckets {
			if b.lim.TokensAt(now) >= float64(b.limit.Burst) {
				delete(s.buckets, k)
			}
		}
		for k := range s.buckets {
			if len(s.buckets) < perCap {
				break
			}
			delete(s.buckets, k) // map order is random: an arbitrary victim
		}
	}
	b := &bucket{lim: rate.NewLimiter(rate.Limit(lim.PerSecond), lim.Burst), limit: lim}
	s.buckets[id] = b
	return b
}

// Len returns the number of buckets the limiter holds.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// RetryAfter is the value of a Retry-After header for wait: whole seconds,
// rounded up, at least 1.
func RetryAfter(wait time.Duration) int {
	return int(max(1, math.Ceil(wait.Seconds())))
}
