package log

import (
	"io"
	"testing"
)

// subscribe subscribes to l, failing the test if it cannot.
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
