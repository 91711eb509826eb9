package log_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/log"
)

// subscriber is an [log.ErrorLog] or an [log.AuditLog].
type subscriber interface {
	Subscribe() (*log.Subscription, error)
}

// subscribe subscribes to l, failing the test if it cannot.
func subscribe(t testing.TB, l subscriber) *log.Subscription {
	t.Helper()
	s, err := l.Subscribe()
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return s
}

func TestSubscribeOnlyLaterEvents(t *testing.T) {
	l := log.NewErrorLog(io.Discard, nil, nil)
	l.Logger().Error("before")
	sub := subscribe(t, l)
	defer sub.Close()
	l.Logger().Error("after")

	if n := len(sub.Events()); n != 1 {
		t.Fatalf("%d events buffered, want 1", n)
	}
	if event := string(<-sub.Events()); !strings.Contains(event, "msg=after") {
		t.Errorf("got event %q, want the record logged after subscribing", event)
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	a := log.NewAuditLog(io.Discard, nil, nil)
	stalled := subscribe(t, a) // never read
	defer stalled.Close()
	reader := subscribe(t, a) // read after every event
	defer reader.Close()

	const extra = 10
	for i := range log.SubscriberBuffer + extra {
		a.Log(log.AuditEvent{Time: auditTime, Method: "GET", Path: fmt.Sprintf("/v1/key/describe/k%d", i), Status: 200})
		if event := string(<-reader.Events()); !strings.Contains(event, fmt.Sprintf(`"/v1/key/describe/k%d"`, i)) {
			t.Fatalf("reader got %q for event %d", event, i)
		}
	}
	if n := len(stalled.Events()); n != log.SubscriberBuffer {
		t.Errorf("stalled subscriber holds %d events, want the buffer size %d", n, log.SubscriberBuffer)
	}
	if d := stalled.Dropped(); d != extra {
		t.Errorf("stalled subscriber dropped %d events, want %d", d, extra)
	}
	if d := reader.Dropped(); d != 0 {
		t.Errorf("reading subscriber dropped %d events, want 0", d)
	}
	// The oldest events are kept, the newest dropped.
	if event := string(<-stalled.Events()); !strings.Contains(event, `"/v1/key/describe/k0"`) {
		t.Errorf("first buffered event is %q, want k0", event)
	}
}

func TestSubscriptionClose(t *testing.T) {
	l := log.NewErrorLog(io.Discard, nil, nil)
	sub := subscribe(t, l)
	other := subscribe(t, l)
	defer other.Close()

	l.Logger().Error("one")
	sub.Close()
	sub.Close() // a second Close is harmless
	l.Logger().Error("two")

	var got []string
	for event := range sub.Events() { // ends: the channel is closed
		got = append(got, string(event))
	}
	if len(got) != 1 || !strings.Contains(got[0], "msg=one") {
		t.Errorf("closed subscription yielded %q, want only the event before Close", got)
	}
	if n := len(other.Events()); n != 2 {
		t.Errorf("other subscription has %d events, want 2", n)
	}
}

// flushWriter records writes and flushes, and fails once it holds failAt
// events.
type flushWriter struct {
	events  []string
	flushes int
	failAt  int
}

var errWrite = errors.New("write failed")

func (w *flushWriter) Write(p []byte) (int, error) {
	if w.failAt > 0 && len(w.events) == w.failAt {
		return 0, errWrite
	}
	w.events = append(w.events, string(p))
	return len(p), nil
}

func (w *flushWriter) flush() error { w.flushes++; return nil }

func TestStream(t *testing.T) {
	t.Run("until closed", func(t *testing.T) {
		l := log.NewErrorLog(io.Discard, nil, nil)
		sub := subscribe(t, l)
		l.Logger().Error("one")
		l.Logger().Error("two")
		sub.Close()

		var w flushWriter
		if err := sub.Stream(t.Context(), &w, w.flush); err != nil {
			t.Fatalf("Stream of a closed subscription: %v, want nil", err)
		}
		// Both events wait when Stream starts, so one flush sends them
		// (Stream flushed after every event before the fan-out was made
		// cheaper for slow clients; see TestStreamBatches).
		if len(w.events) != 2 || w.flushes != 1 {
			t.Errorf("wrote %d events with %d flushes, want 2 and 1", len(w.events), w.flushes)
		}
		if !strings.HasPrefix(w.events[0], `{"message":"time=`) || !strings.HasSuffix(w.events[1], `msg=two"}`+"\n") {
			t.Errorf("unexpected events %q", w.events)
		}
	})
	t.Run("until context done", func(t *testing.T) {
		l := log.NewErrorLog(io.Discard, nil, nil)
		sub := subscribe(t, l)
		defer sub.Close()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := sub.Stream(ctx, io.Discard, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Stream = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("until write fails", func(t *testing.T) {
		l := log.NewErrorLog(io.Discard, nil, nil)
		sub := subscribe(t, l)
		defer sub.Close()
		for range 3 {
			l.Logger().Error("event")
		}
		w := flushWriter{failAt: 1}
		if err := sub.Stream(t.Context(), &w, w.flush); !errors.Is(err, errWrite) {
			t.Errorf("Stream = %v, want %v", err, errWrite)
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for the concurrent Writes of this test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestConcurrentLogging(t *testing.T) {
	var errOut, auditOut lockedBuffer
	var mu sync.Mutex
	var errCount, auditCount int
	l := log.NewErrorLog(&errOut, nil, func() { mu.Lock(); errCount++; mu.Unlock() })
	a := log.NewAuditLog(&auditOut, nil, func() { mu.Lock(); auditCount++; mu.Unlock() })

	// A reader that sees everything, started before any logging.
	errSub, auditSub := subscribe(t, l), subscribe(t, a)
	var readers sync.WaitGroup
	var errEvents, auditEvents int
	readers.Go(func() {
		for range errSub.Events() {
			errEvents++
		}
	})
	readers.Go(func() {
		for range auditSub.Events() {
			auditEvents++
		}
	})

	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				l.Logger().Error("keystore failure", log.Request("GET", "/v1/key/describe/k", netip.MustParseAddr("10.0.0.1"), testIdentity), "worker", w, "i", i)
				a.Log(log.AuditEvent{Method: "GET", Path: "/v1/key/describe/k", Status: 404})
			}
		})
		// Subscribers come and go while logging runs.
		wg.Go(func() {
			for range 20 {
				es, err := l.Subscribe()
				if err != nil {
					t.Error(err)
					return
				}
				as, err := a.Subscribe()
				if err != nil {
					t.Error(err)
					return
				}
				es.Close()
				as.Close()
			}
		})
	}
	wg.Wait()
	errSub.Close()
	auditSub.Close()
	readers.Wait()

	const total = workers * perWorker
	if n := strings.Count(errOut.buf.String(), "\n"); n != total {
		t.Errorf("error log printed %d lines, want %d", n, total)
	}
	if n := strings.Count(auditOut.buf.String(), "\n"); n != total {
		t.Errorf("audit log printed %d lines, want %d", n, total)
	}
	if errCount != total || auditCount != total {
		t.Errorf("onEvent counted %d error and %d audit events, want %d each", errCount, auditCount, total)
	}
	if got := uint64(errEvents) + errSub.Dropped(); got != total {
		t.Errorf("error subscriber received+dropped %d, want %d", got, total)
	}
	if got := uint64(auditEvents) + auditSub.Dropped(); got != total {
		t.Errorf("audit subscriber received+dropped %d, want %d", got, total)
	}
}
