package log

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// subscribe subscribes to l (an [ErrorLog] or an [AuditLog]), failing the
// test if it cannot.
func subscribe(t testing.TB, l interface {
	Subscribe() (*Subscription, error)
}) *Subscription {
	t.Helper()
	s, err := l.Subscribe()
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return s
}

func TestHubUnsubscribeFrees(t *testing.T) {
	l := NewErrorLog(io.Discard, nil, nil)
	a := NewAuditLog(io.Discard, nil, nil)
	subs := []*Subscription{subscribe(t, l), subscribe(t, l), subscribe(t, a)}
	if !l.hub.active() || !a.hub.active() {
		t.Fatal("hub not active with subscribers")
	}
	for _, s := range subs {
		s.Close()
	}
	for name, h := range map[string]*hub{"error": &l.hub, "audit": &a.hub} {
		if h.active() || h.subs.Load() != nil {
			t.Errorf("%s hub keeps subscriptions (active=%v) after Close", name, h.active())
		}
	}
}

// TestNoSubscriberNoEncoding checks that logging with nobody subscribed
// does no JSON work: it allocates nothing (slog pools its buffers), while
// encoding for a subscriber allocates.
func TestNoSubscriberNoEncoding(t *testing.T) {
	l := NewErrorLog(io.Discard, nil, nil)
	logger := l.Logger()
	without := testing.AllocsPerRun(100, func() { logger.Error("keystore failure") })
	maxWithout := 0.0
	if raceEnabled {
		maxWithout = 1
	}
	if without > maxWithout {
		t.Errorf("error log without subscriber: %v allocations per record, want at most %v", without, maxWithout)
	}
	s := subscribe(t, l)
	defer s.Close()
	with := testing.AllocsPerRun(100, func() {
		logger.Error("keystore failure")
		<-s.Events()
	})
	if with < without+2 {
		t.Errorf("error log with a subscriber: %v allocations per record, want at least 2 more than the %v without", with, without)
	}
}

// blockingWriter blocks every Write until release is closed, and signals
// the first one on started.
type blockingWriter struct {
	started chan struct{}
	once    sync.Once
	release chan struct{}
	n       atomic.Int64
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	w.n.Add(1)
	return len(p), nil
}

// TestParkStalledStream: a subscription whose Stream is stuck writing to a
// client that does not read is taken out of the publishers' snapshot once
// its buffer is full, so that it costs them nothing; the events it misses
// are counted, and it gets events again once its writes go through.
func TestParkStalledStream(t *testing.T) {
	a := NewAuditLog(io.Discard, nil, nil)
	defer a.Close()
	sub := subscribe(t, a)
	other := subscribe(t, a) // read directly: never parked
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- sub.Stream(t.Context(), w, nil) }()

	ev := AuditEvent{Method: "GET", Path: "/v1/status", Status: 200}
	a.Log(ev)
	<-w.started // Stream is stuck in its first write
	const extra = 100
	for range SubscriberBuffer + extra {
		a.Log(ev)
	}
	if !sub.parked.Load() {
		t.Fatal("stalled stream not parked")
	}
	if snap := a.hub.subs.Load(); snap == nil || len(snap.offer) != 1 || snap.offer[0] != other {
		t.Fatalf("publishers still offer to the stalled stream: %v", snap)
	}
	if got := sub.Dropped(); got != extra {
		t.Errorf("Dropped() = %d, want %d", got, extra)
	}
	if got := a.Dropped(); got != extra+extra+1 {
		t.Errorf("AuditLog.Dropped() = %d, want %d (the stream's and the unread subscription's)", got, 2*extra+1)
	}

	close(w.release) // the client reads again
	for sub.parked.Load() {
		runtime.Gosched() // Stream writes the buffer out, then unparks
	}
	a.Log(ev)
	sub.Close()
	if err := <-done; err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if got, want := w.n.Load(), int64(1+SubscriberBuffer+1); got != want {
		t.Errorf("the stream wrote %d events, want %d (the first, the buffer and one after unparking)", got, want)
	}
}

// TestParkWhileClosing: publishers park stalled streams while the streams
// are being closed, and logging and closing all finish.
func TestParkWhileClosing(t *testing.T) {
	a := NewAuditLog(io.Discard, nil, nil)
	defer a.Close()
	release := make(chan struct{})
	var streams sync.WaitGroup
	subs := make([]*Subscription, 16)
	for i := range subs {
		subs[i] = subscribe(t, a)
		w := &blockingWriter{started: make(chan struct{}), release: release}
		streams.Go(func() { subs[i].Stream(t.Context(), w, nil) })
	}
	var loggers sync.WaitGroup
	for range 4 {
		loggers.Go(func() {
			for range 3 * SubscriberBuffer {
				a.Log(AuditEvent{Method: "GET", Path: "/v1/status", Status: 200})
			}
		})
	}
	for _, s := range subs {
		s.Close()
	}
	loggers.Wait()
	close(release)
	streams.Wait()
	if snap := a.hub.subs.Load(); snap != nil {
		t.Errorf("subscriptions left after Close: %v", snap.offer)
	}
}
