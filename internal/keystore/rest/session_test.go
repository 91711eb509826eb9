package rest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/keystore/rest"
)

// refresher is a RefreshFunc that records when and how it was called and
// fails while fail is set.
type refresher struct {
	mu    sync.Mutex
	calls []call
	n     int
	ttl   time.Duration
	fail  bool
}

type call struct {
	at      time.Duration // since the bubble's start
	current string
}

func (r *refresher) refresh(start time.Time) rest.RefreshFunc {
	return func(ctx context.Context, current string) (string, time.Duration, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, call{time.Since(start), current})
		if r.fail {
			return "", 0, errors.New("login refused")
		}
		r.n++
		return fmt.Sprintf("tok-%d", r.n), r.ttl, nil
	}
}

func (r *refresher) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSessionRenewsAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		r := &refresher{ttl: 10 * time.Minute}
		s, err := rest.StartSession(t.Context(), rest.SessionConfig{
			Refresh: r.refresh(start), Retry: 5 * time.Second, Fallback: time.Hour, Logger: quiet(), Store: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Token(); got != "tok-1" {
			t.Fatalf("Token = %q", got)
		}
		time.Sleep(11 * time.Minute) // fake time: renewals at 5 and 10 minutes
		synctest.Wait()
		if got := s.Token(); got != "tok-3" {
			t.Fatalf("Token after 11 minutes = %q, want tok-3", got)
		}
		calls := r.snapshot()
		want := []call{{0, ""}, {5 * time.Minute, "tok-1"}, {10 * time.Minute, "tok-2"}}
		if fmt.Sprint(calls) != fmt.Sprint(want) {
			t.Fatalf("refresh calls = %v, want %v", calls, want)
		}
		s.Close()
		time.Sleep(time.Hour)
		if n := len(r.snapshot()); n != 3 {
			t.Fatalf("%d refresh calls after Close, want none", n-3)
		}
	})
}

func TestSessionRetriesFailedRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		r := &refresher{ttl: 2 * time.Minute}
		s, err := rest.StartSession(t.Context(), rest.SessionConfig{
			Refresh: r.refresh(start), Retry: 5 * time.Second, Fallback: time.Hour, Logger: quiet(), Store: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r.mu.Lock()
		r.fail = true
		r.mu.Unlock()
		time.Sleep(time.Minute + 11*time.Second) // fails at 60s, 65s, 70s
		synctest.Wait()
		r.mu.Lock()
		r.fail = false
		r.ttl = 0 // unknown lifetime: renewed at the fallback interval
		r.mu.Unlock()
		time.Sleep(5 * time.Second) // succeeds at 75s
		synctest.Wait()
		time.Sleep(time.Hour) // and again at 75s + 1h
		synctest.Wait()
		var at []time.Duration
		for _, c := range r.snapshot() {
			at = append(at, c.at)
		}
		want := []time.Duration{0, 60 * time.Second, 65 * time.Second, 70 * time.Second, 75 * time.Second, 75*time.Second + time.Hour}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Fatalf("refresh at %v, want %v", at, want)
		}
		if got := s.Token(); got != "tok-3" {
			t.Fatalf("Token = %q, want tok-3", got)
		}
	})
}

// TestSessionRelogin checks that many callers whose token was refused
// cause one login, and that a caller with an already replaced token gets
// the new one without a login.
func TestSessionRelogin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &refresher{ttl: time.Hour}
		s, err := rest.StartSession(t.Context(), rest.SessionConfig{
			Refresh: r.refresh(time.Now()), Retry: time.Second, Fallback: time.Hour, Logger: quiet(), Store: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				tok, err := s.Relogin(t.Context(), "tok-1")
				if err != nil || tok != "tok-2" {
					t.Errorf("Relogin = %q, %v; want tok-2", tok, err)
				}
			})
		}
		wg.Wait()
		if n := len(r.snapshot()); n != 2 {
			t.Fatalf("%d logins, want 2 (start + one re-login)", n)
		}
	})
}

func TestStartSessionFails(t *testing.T) {
	r := &refresher{fail: true}
	if _, err := rest.StartSession(t.Context(), rest.SessionConfig{Refresh: r.refresh(time.Now()), Logger: quiet()}); err == nil {
		t.Fatal("StartSession with a failing login succeeded")
	}
}
