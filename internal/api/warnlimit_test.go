package api

import (
	"testing"
	"time"
)

// TestWarnLimiter: the warnings about forged forwarded-certificate headers
// over all connections: a burst, then one every notProxyEvery; the next
// warning written says how many were left out.
func TestWarnLimiter(t *testing.T) {
	var l warnLimiter
	t0 := time.Unix(1_000_000, 0)
	for i := range notProxyBurst {
		if ok, n := l.allow(t0); !ok || n != 0 {
			t.Fatalf("warning %d of the burst: %v, %d suppressed", i, ok, n)
		}
	}
	for range 5 {
		if ok, _ := l.allow(t0.Add(notProxyEvery / 2)); ok {
			t.Fatal("a warning beyond the burst was allowed")
		}
	}
	// A clock that goes back refills nothing.
	if ok, _ := l.allow(t0.Add(-time.Hour)); ok {
		t.Fatal("a warning was allowed by a clock going back")
	}
	if ok, n := l.allow(t0.Add(notProxyEvery)); !ok || n != 6 {
		t.Fatalf("after %v: %v, %d suppressed; want allowed, 6", notProxyEvery, ok, n)
	}
	if ok, _ := l.allow(t0.Add(notProxyEvery)); ok {
		t.Fatal("two warnings in one refill")
	}
	if ok, n := l.allow(t0.Add(time.Hour)); !ok || n != 1 {
		t.Fatalf("an hour later: %v, %d suppressed; want allowed, 1", ok, n)
	}
}
