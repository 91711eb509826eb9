package log_test

import (
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
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
		l := log.NewErrorLog(io.Discard, nil, nil)
		for range subscribers {
			drain(b, subscribe(b, l))
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
		a := log.NewAuditLog(io.Discard, nil, nil)
		for range subscribers {
			drain(b, subscribe(b, a))
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
	b.Run("parallel-devnull", func(b *testing.B) {
		// Concurrent requests logging to a real file, so that every write
		// call costs a real write(2), as on a server's stdout.
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		w := &countingWriter{w: f}
		a := log.NewAuditLog(w, nil, nil)
		ev := log.AuditEvent{
			Time: time.Now(), Method: "POST", Path: "/v1/key/generate/my-key", IP: netip.MustParseAddr("10.0.0.5"),
			Identity: testIdentity, Status: 200, Duration: 427 * time.Microsecond,
		}
		b.ReportAllocs()
		b.SetParallelism(16) // 32 goroutines on 2 cores, like 32 clients
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a.Log(ev)
			}
		})
		b.ReportMetric(float64(w.writes.Load())/float64(b.N), "writes/op")
	})
}

// countingWriter counts the Write calls that reach w.
type countingWriter struct {
	w      io.Writer
	writes atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.w.Write(p)
}
