package api

import "time"

// SetRateLimitClock makes the rate-limit buckets of s read the time from
// now instead of the request's start. Call it before s serves requests.
func SetRateLimitClock(s *Server, now func() time.Time) { s.rateNow = now }
