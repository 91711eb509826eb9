package log_test

import (
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/log"
)

// drain reads sub until it is closed, in a goroutine owned by b.
func drain(b *testing.B, sub *log.Subscription) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for range sub.Events() {
		}
	})
	b.Cleanup(func() { sub.Close(); wg.Wait() })
}

func BenchmarkErrorLog(b *testing.B) {
	run := func(b *testing.B, subscribers int) {
		l := log.NewErrorLog(io.Discard, nil)
		for range subscribers {
			drain(b, l.Subscribe())
		}
		logger := l.Logger()
		req := log.Request("PUT", "/v1/key/create/k", netip.MustParseAddr("10.0.0.5"), testIdentity)
		b.ReportAllocs()
		for b.Loop() {
			logger.Error("vault: connection refused", req)
		}
	}
	b.Run("no-subscriber", func(b *testing.B) { run(b, 0) })
	b.Run("one-subscriber", func(b *testing.B) { run(b, 1) })
}

func BenchmarkAuditLog(b *testing.B) {
	run := func(b *testing.B, subscribers int) {
		a := log.NewAuditLog(io.Discard, nil)
		for range subscribers {
			drain(b, a.Subscribe())
		}
		ev := log.AuditEvent{
			Time: time.Now(), Method: "PUT", Path: "/v1/key/create/k", IP: netip.MustParseAddr("10.0.0.5"),
			Identity: testIdentity, Status: 200, Duration: 427 * time.Microsecond,
		}
		b.ReportAllocs()
		for b.Loop() {
			a.Log(ev)
		}
	}
	b.Run("no-subscriber", func(b *testing.B) { run(b, 0) })
	b.Run("one-subscriber", func(b *testing.B) { run(b, 1) })
}
