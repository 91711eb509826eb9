package api

import (
	"strconv"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/ratelimit"
)

// SetRateLimits makes the server limit the request rate of identities as c
// says (docs/rate-limits.md), from the next request on; nil or a Config
// that limits nobody turns rate limiting off. Buckets outlive a change:
// an identity keeps its tokens, refilled at the new rate from now on. The
// server does not modify c.
func (s *Server) SetRateLimits(c *ratelimit.Config) {
	if !c.Enabled() {
		c = nil
	}
	s.limits.Store(c)
}

// rateLimited reports whether the request r of identity id is over its
// rate limit, and if so answers it 429 with a Retry-After header. It runs
// once the identity is known, before the policy check, so that a client
// over its limit costs a map lookup and a bucket.
//
// Only the admin and identities assigned to a policy have a limit: other
// identities are refused by the policy check at the same cost, and giving
// them buckets would let anyone with a new certificate grow the table.
func (s *Server) rateLimited(w *statusWriter, r *request, id kes.Identity) bool {
	c := s.limits.Load()
	if c == nil {
		return false
	}
	var lim *ratelimit.Limit
	var source string
	if r.state.auth.IsAdmin(id) {
		lim, source = c.For(true, "")
	} else if policy, ok := r.state.auth.PolicyName(id); ok {
		lim, source = c.For(false, policy)
	}
	if lim == nil {
		return false
	}
	now := r.start
	if s.rateNow != nil {
		now = s.rateNow()
	}
	ok, wait := s.limiter.Allow(string(id), *lim, now)
	if ok {
		return false
	}
	// Audited as a denied request: the audit lines of a client that keeps
	// coming back are thinned per source like those of refused ones.
	r.denied = true
	s.metrics.RateLimited()
	s.debug(r, "too many requests: rate limited by "+source+".rate_limit")
	w.Header()["Retry-After"] = []string{strconv.Itoa(ratelimit.RetryAfter(wait))}
	writeError(w, kes.ErrTooManyRequests)
	return true
}
