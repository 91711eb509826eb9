package kes_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// limiting answers 429 with retryAfter as Retry-After (none if empty) to
// its first n requests, then 200.
type limiting struct {
	n          int32
	retryAfter string
	hits       atomic.Int32
}

func (l *limiting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.hits.Add(1) <= l.n {
		if l.retryAfter != "" {
			w.Header().Set("Retry-After", l.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte("{\"message\":\"too many requests\"\n}"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"plaintext":"AQ==","ciphertext":"Ag=="}`))
}

func generate(ctx context.Context, c *kes.Client) error {
	_, err := c.GenerateKey(ctx, "k", nil)
	return err
}

// TestRateLimitRetry checks that a client answered 429 waits what the
// server asks for, with jitter, and then succeeds.
func TestRateLimitRetry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter string
		min, max   time.Duration // of each wait
	}{
		{"seconds", "2", 2 * time.Second, 2*time.Second + 2*time.Second/4},
		{"capped", "3600", kes.MaxRetryAfter, kes.MaxRetryAfter + kes.MaxRetryAfter/4},
		{"no header", "", 200 * time.Millisecond, 250 * time.Millisecond},
		{"HTTP date in the past", "Wed, 21 Oct 2015 07:28:00 GMT", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &limiting{n: kes.MaxRateLimitRetries, retryAfter: tt.retryAfter}
			c, s := newTestClient(t, newTLSServer(t, h))
			if err := generate(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if got := h.hits.Load(); got != kes.MaxRateLimitRetries+1 {
				t.Fatalf("server got %d requests, want %d", got, kes.MaxRateLimitRetries+1)
			}
			waits := s.all()
			if len(waits) != kes.MaxRateLimitRetries {
				t.Fatalf("client waited %d times, want %d", len(waits), kes.MaxRateLimitRetries)
			}
			for _, d := range waits {
				if d < tt.min || d > tt.max {
					t.Errorf("waited %v, want within [%v, %v]", d, tt.min, tt.max)
				}
			}
		})
	}
}

// TestRateLimitGivesUp checks the typed error once every endpoint kept
// answering 429, and that the client moves on to another endpoint without
// parking the limiting one.
func TestRateLimitGivesUp(t *testing.T) {
	t.Run("one endpoint", func(t *testing.T) {
		h := &limiting{n: 1 << 30, retryAfter: "2"}
		srv := newTLSServer(t, h)
		c, s := newTestClient(t, srv)
		err := generate(t.Context(), c)
		rl, ok := errors.AsType[*kes.RateLimitError](err)
		if !ok {
			t.Fatalf("got %v, want *kes.RateLimitError", err)
		}
		if !errors.Is(err, kes.ErrTooManyRequests) || rl.RetryAfter != 2*time.Second || rl.Host != srv.Listener.Addr().String() {
			t.Fatalf("got %+v (%v), want ErrTooManyRequests from %s with RetryAfter 2s", rl, err, srv.Listener.Addr())
		}
		if got, want := h.hits.Load(), int32(1+kes.MaxRateLimitRetries); got != want {
			t.Fatalf("server got %d requests, want %d", got, want)
		}
		if n := len(s.all()); n != kes.MaxRateLimitRetries {
			t.Fatalf("client waited %d times, want %d", n, kes.MaxRateLimitRetries)
		}
	})
	t.Run("another endpoint answers", func(t *testing.T) {
		busy := &limiting{n: 1 << 30, retryAfter: "1"}
		free := &limiting{}
		c, _ := newTestClient(t, newTLSServer(t, busy), newTLSServer(t, free))
		for i := range 4 {
			if err := generate(t.Context(), c); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		// Round robin starts two of the four requests on the limiting
		// endpoint, which is tried 1+MaxRateLimitRetries times each: it
		// is not parked.
		if got, want := busy.hits.Load(), int32(2*(1+kes.MaxRateLimitRetries)); got != want {
			t.Fatalf("limiting endpoint got %d requests, want %d", got, want)
		}
		if got := free.hits.Load(); got != 4 {
			t.Fatalf("free endpoint got %d requests, want 4", got)
		}
	})
	t.Run("wait outlasts the deadline", func(t *testing.T) {
		h := &limiting{n: 1 << 30, retryAfter: "5"}
		c, s := newTestClient(t, newTLSServer(t, h))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		err := generate(ctx, c)
		if rl, ok := errors.AsType[*kes.RateLimitError](err); !ok || rl.RetryAfter != 5*time.Second {
			t.Fatalf("got %v, want *kes.RateLimitError with RetryAfter 5s", err)
		}
		if ctx.Err() != nil {
			t.Fatal("the client waited for the deadline instead of giving up at once")
		}
		if got := h.hits.Load(); got != 1 {
			t.Fatalf("server got %d requests, want 1", got)
		}
		if n := len(s.all()); n != 0 {
			t.Fatalf("client waited %d times, want 0", n)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		h := &limiting{n: 1 << 30, retryAfter: "1"}
		c, _ := newTestClient(t, newTLSServer(t, h))
		ctx, cancel := context.WithCancel(t.Context())
		kes.SetSleep(c, func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		})
		if err := generate(ctx, c); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}
