package log

import (
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// TestDeniedTableBounded floods from more addresses than the table holds:
// it stays at maxDeniedSources entries plus the shared one, and empties
// once the sources are idle.
func TestDeniedTableBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAuditLog(io.Discard, nil, nil)
		defer a.Close()
		ip := netip.MustParseAddr("2001:db8::1")
		for range 3 * maxDeniedSources {
			for range 3 {
				a.Log(AuditEvent{Method: "GET", Path: "/v1/status", IP: ip, Status: 403, Denied: true})
			}
			ip = ip.Next()
		}
		a.denied.mu.Lock()
		n := len(a.denied.sources)
		a.denied.mu.Unlock()
		if n > maxDeniedSources+1 {
			t.Errorf("%d sources in the table, want at most %d", n, maxDeniedSources+1)
		}
		time.Sleep(3 * summaryInterval)
		synctest.Wait()
		a.denied.mu.Lock()
		n, running := len(a.denied.sources), a.denied.running
		a.denied.mu.Unlock()
		if n != 0 || running {
			t.Errorf("idle table: %d sources, goroutine running %v; want 0 and false", n, running)
		}
	})
}
