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

// subscribe subscribes to an [log.ErrorLog] or an [log.AuditLog], failing
// the test if it cannot.
var subscribe = log.MustSubscribe

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
		// (Stream flushed after every event before it batched the events
		// of each StreamDelay; see TestStreamBatches).
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

// TestSubscriberCap checks that a log serves at most MaxSubscribers
// subscriptions, that closing one makes room, that drops are totalled over
// all subscriptions, and that Close ends every subscription and refuses
// new ones.
func TestSubscriberCap(t *testing.T) {
	a := log.NewAuditLog(io.Discard, nil, nil)
	subs := make([]*log.Subscription, log.MaxSubscribers)
	for i := range subs {
		subs[i] = subscribe(t, a)
	}
	if _, err := a.Subscribe(); !errors.Is(err, log.ErrTooManySubscribers) {
		t.Fatalf("subscription %d: %v, want %v", log.MaxSubscribers+1, err, log.ErrTooManySubscribers)
	}
	const events = log.SubscriberBuffer + 3
	for range events {
		a.Log(log.AuditEvent{Method: "GET", Path: "/v1/status", Status: 200})
	}
	subs[0].Close()
	extra := subscribe(t, a) // room again
	if got, want := a.Dropped(), uint64(3*log.MaxSubscribers); got != want {
		t.Errorf("Dropped() = %d, want %d (3 for each subscriber, closed ones included)", got, want)
	}
	a.Close()
	for _, s := range append(subs, extra) {
		n := 0
		for range s.Events() { // ends: Close closed it
			n++
		}
		if s != subs[0] && s != extra && n != log.SubscriberBuffer {
			t.Errorf("subscription yielded %d events after Close, want the %d buffered", n, log.SubscriberBuffer)
		}
	}
	if _, err := a.Subscribe(); !errors.Is(err, log.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want %v", err, log.ErrClosed)
	}
	l := log.NewErrorLog(io.Discard, nil, nil)
	l.Close()
	if _, err := l.Subscribe(); !errors.Is(err, log.ErrClosed) {
		t.Errorf("error log: Subscribe after Close: %v, want %v", err, log.ErrClosed)
	}
}

// TestStreamBatches checks that the events arriving within StreamDelay
// are written with one flush, and an event arriving alone is flushed alone.
func TestStreamBatches(t *testing.T) {
	l := log.NewErrorLog(io.Discard, nil, nil)
	sub := subscribe(t, l)
	for range 10 {
		l.Logger().Error("burst")
	}
	w := &chanWriter{written: make(chan struct{}, 100)}
	done := make(chan error, 1)
	go func() { done <- sub.Stream(t.Context(), w, w.flush) }()
	<-w.written
	if w.events() != 10 {
		t.Errorf("first flush after %d events, want the 10 waiting", w.events())
	}
	l.Logger().Error("alone")
	<-w.written
	if w.events() != 11 {
		t.Errorf("second flush after %d events, want 11", w.events())
	}
	sub.Close()
	if err := <-done; err != nil {
		t.Errorf("Stream = %v, want nil", err)
	}
}

// chanWriter counts events and signals each flush.
type chanWriter struct {
	mu      sync.Mutex
	n       int
	written chan struct{}
}

func (w *chanWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return len(p), nil
}

func (w *chanWriter) flush() error { w.written <- struct{}{}; return nil }

func (w *chanWriter) events() int { w.mu.Lock(); defer w.mu.Unlock(); return w.n }
