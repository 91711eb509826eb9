package kes_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// TestErrors checks that each error class a server answers comes back as the
// matching error value, including legacy texts and non-JSON bodies.
func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		call        func(ctx context.Context, c *kes.Client) error
		want        error
	}{
		{"key not found", 404, "application/json", "{\"message\":\"key does not exist\"\n}", describe, kes.ErrKeyNotFound},
		{"key exists", 400, "application/json", `{"message":"key already exists"}`, create, kes.ErrKeyExists},
		{"legacy key exists", 400, "application/json", `{"message":"key does already exist"}`, create, kes.ErrKeyExists},
		{"legacy key exists, error field", 400, "application/json; charset=utf-8", `{"error":"key does already exist"}`, create, kes.ErrKeyExists},
		{"not allowed", 403, "application/json", `{"message":"not authorized: insufficient permissions"}`, create, kes.ErrNotAllowed},
		{"legacy not allowed", 403, "application/json", `{"message":"prohibited by policy"}`, create, kes.ErrNotAllowed},
		{"decrypt", 400, "application/json", `{"message":"decryption failed: ciphertext is not authentic"}`, decrypt, kes.ErrDecrypt},
		{"no HMAC", 409, "application/json", `{"message":"key does not support HMAC"}`, hmac, kes.ErrNoHMAC},
		{"invalid name", 400, "application/json", `{"message":"key name 'a.b' is empty, too long or contains invalid characters"}`, create, kes.ErrInvalidKeyName("a.b")},
		{"policy not found", 404, "application/json", `{"message":"policy does not exist"}`, describePolicy, kes.ErrPolicyNotFound},
		{"identity not found", 404, "application/json", `{"message":"identity does not exist"}`, describeSelf, kes.ErrIdentityNotFound},
		{"store unreachable", 504, "application/json", `{"message":"key store is not reachable"}`, ready, kes.ErrStoreUnreachable},
		{"store unavailable", 502, "application/json", `{"message":"key store is unavailable"}`, ready, kes.ErrStoreUnavailable},
		{"too many requests", 429, "application/json", "{\"message\":\"too many requests\"\n}", create, kes.ErrTooManyRequests},
		{"keystore failure", 502, "application/json", `{"message":"failed to read key"}`, describe, kes.NewError(502, "failed to read key")},
		{"unknown path", 404, "text/plain; charset=utf-8", "404 page not found\n", describe, kes.NewError(404, "404 page not found")},
		{"not implemented", 501, "text/plain", "not implemented", create, kes.NewError(501, "not implemented")},
		{"empty body", 500, "", "", create, kes.NewError(500, "Internal Server Error")},
		{"JSON content type, text body", 400, "application/json", "oops", create, kes.NewError(400, "oops")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recorder{status: tt.status, contentType: tt.contentType, body: tt.body}
			c, _ := newTestClient(t, newTLSServer(t, h))
			err := tt.call(t.Context(), c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if e, ok := errors.AsType[*kes.Error](err); !ok || e.Status != tt.status {
				t.Fatalf("got %#v, want *kes.Error with status %d", err, tt.status)
			}
		})
	}
}

func describe(ctx context.Context, c *kes.Client) error {
	_, err := c.DescribeKey(ctx, "k")
	return err
}
func create(ctx context.Context, c *kes.Client) error { return c.CreateKey(ctx, "k") }
func ready(ctx context.Context, c *kes.Client) error  { return c.IsReady(ctx) }
func decrypt(ctx context.Context, c *kes.Client) error {
	_, err := c.Decrypt(ctx, "k", []byte("x"), nil)
	return err
}
func hmac(ctx context.Context, c *kes.Client) error {
	_, err := c.HMAC(ctx, "k", []byte("x"))
	return err
}
func describePolicy(ctx context.Context, c *kes.Client) error {
	_, err := c.DescribePolicy(ctx, "p")
	return err
}
func describeSelf(ctx context.Context, c *kes.Client) error {
	_, err := c.DescribeSelf(ctx)
	return err
}

// flaky answers 503 to the first n requests, then 200, and records the
// bodies it received.
type flaky struct {
	n      atomic.Int32
	fails  int32
	mu     sync.Mutex
	bodies []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b [256]byte
	n, _ := r.Body.Read(b[:])
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b[:n]))
	f.mu.Unlock()
	if f.n.Add(1) <= f.fails {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"message":"request timeout exceeded"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ciphertext":"AQ=="}`))
}

func TestRetry503(t *testing.T) {
	t.Run("succeeds on the third attempt", func(t *testing.T) {
		f := &flaky{fails: 2}
		c, s := newTestClient(t, newTLSServer(t, f))
		if _, err := c.Encrypt(t.Context(), "k", []byte("secret"), nil); err != nil {
			t.Fatal(err)
		}
		if got := f.n.Load(); got != 3 {
			t.Fatalf("server got %d requests, want 3", got)
		}
		for i, b := range f.bodies {
			if b != `{"plaintext":"c2VjcmV0"}` {
				t.Errorf("attempt %d sent body %q", i, b)
			}
		}
		delays := s.all()
		if len(delays) != 2 {
			t.Fatalf("client waited %d times, want 2", len(delays))
		}
		for _, d := range delays {
			if d < 200*time.Millisecond || d >= time.Second {
				t.Errorf("backoff %v outside [200ms, 1s)", d)
			}
		}
	})
	t.Run("gives up after two retries", func(t *testing.T) {
		f := &flaky{fails: 100}
		c, _ := newTestClient(t, newTLSServer(t, f))
		_, err := c.Encrypt(t.Context(), "k", []byte("x"), nil)
		if !errors.Is(err, kes.NewError(503, "request timeout exceeded")) {
			t.Fatalf("got %v, want 503 request timeout exceeded", err)
		}
		if got := f.n.Load(); got != 1+kes.MaxRetries {
			t.Fatalf("server got %d requests, want %d", got, 1+kes.MaxRetries)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		h := &recorder{status: 404, contentType: "application/json", body: `{"message":"key does not exist"}`}
		c, s := newTestClient(t, newTLSServer(t, h))
		if err := describe(t.Context(), c); !errors.Is(err, kes.ErrKeyNotFound) {
			t.Fatalf("got %v", err)
		}
		if len(h.requests()) != 1 || len(s.all()) != 0 {
			t.Fatalf("got %d requests and %d waits, want 1 and 0", len(h.requests()), len(s.all()))
		}
	})
}

// TestFailover runs requests against two servers and closes one of them
// mid-run: no request may fail.
func TestFailover(t *testing.T) {
	h1, h2 := &recorder{}, &recorder{}
	s1, s2 := newTLSServer(t, h1), newTLSServer(t, h2)
	c, _ := newTestClient(t, s1, s2)
	ctx := t.Context()
	for i := range 10 {
		if err := c.IsReady(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if len(h1.requests()) != 5 || len(h2.requests()) != 5 {
		t.Fatalf("round robin: got %d and %d requests, want 5 and 5", len(h1.requests()), len(h2.requests()))
	}
	s1.CloseClientConnections()
	s1.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := c.IsReady(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed after one server stopped: %v", err)
	}
	if got := len(h2.requests()); got != 45 {
		t.Fatalf("second server got %d requests, want 45", got)
	}
}

func TestAllEndpointsDown(t *testing.T) {
	srv := newTLSServer(t, &recorder{})
	c, _ := newTestClient(t, srv)
	srv.Close()
	err := c.IsReady(t.Context())
	if _, ok := errors.AsType[*kes.ConnError](err); !ok {
		t.Fatalf("got %v, want *kes.ConnError", err)
	}
	if got := err.Error(); len(got) < 22 || got[:22] != "kes: connection error:" {
		t.Fatalf("error text %q", got)
	}
}

// TestParking checks that a failing endpoint is skipped for ParkDuration
// and tried again afterwards, and that a parked endpoint is still tried
// when it is the only one.
func TestParking(t *testing.T) {
	bad := &recorder{status: 502, contentType: "application/json", body: `{"message":"failed to read key"}`}
	good := &recorder{}
	c, _ := newTestClient(t, newTLSServer(t, bad), newTLSServer(t, good))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	kes.SetNow(c, func() time.Time { return now })

	ctx := t.Context()
	for i := range 6 {
		if err := c.IsReady(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := len(bad.requests()); n != 1 {
		t.Fatalf("failing endpoint got %d requests while parked, want 1", n)
	}
	now = now.Add(kes.ParkDuration + time.Second)
	for range 2 {
		if err := c.IsReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(bad.requests()); n != 2 {
		t.Fatalf("failing endpoint got %d requests after parking ended, want 2", n)
	}

	// A single endpoint that is parked is still tried.
	single, _ := newTestClient(t, newTLSServer(t, bad))
	kes.SetNow(single, func() time.Time { return now })
	for range 2 {
		if err := single.IsReady(ctx); !errors.Is(err, kes.NewError(502, "failed to read key")) {
			t.Fatalf("got %v", err)
		}
	}
	if n := len(bad.requests()); n != 4 {
		t.Fatalf("parked single endpoint got %d requests in total, want 4", n)
	}
}

// TestParkedLastResort checks that a parked endpoint is tried when every
// endpoint that is not parked fails the request: a server that was down
// and came back before its parking ended carries the request.
func TestParkedLastResort(t *testing.T) {
	a := &recorder{status: 502, contentType: "application/json", body: `{"message":"failed to read key"}`}
	b := &recorder{}
	sa, sb := newTLSServer(t, a), newTLSServer(t, b)
	c, _ := newTestClient(t, sa, sb)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	kes.SetNow(c, func() time.Time { return now })
	ctx := t.Context()
	for i := range 2 { // a fails and is parked; b answers
		if err := c.IsReady(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	a.setStatus(200)
	b.setStatus(502)
	// b fails and is parked too; a, parked but healthy again, answers.
	for i := range 4 {
		if err := c.IsReady(ctx); err != nil {
			t.Fatalf("request %d after a recovered and b failed: %v", i, err)
		}
	}
}

func TestCancel(t *testing.T) {
	t.Run("before the request", func(t *testing.T) {
		h := &recorder{}
		c, _ := newTestClient(t, newTLSServer(t, h))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := c.IsReady(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("during backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var hits atomic.Int32
		srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			cancel()
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		c, _ := newTestClient(t, srv)
		kes.SetSleep(c, func(ctx context.Context, d time.Duration) error {
			<-ctx.Done() // the wait ends only through cancellation
			return ctx.Err()
		})
		if err := c.IsReady(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if n := hits.Load(); n != 1 {
			t.Fatalf("server got %d requests, want 1", n)
		}
	})
	t.Run("while the server is slow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		release := make(chan struct{})
		srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer close(release)
		other := newTLSServer(t, &recorder{})
		c, _ := newTestClient(t, srv, other)
		if err := c.IsReady(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

// TestCertificateError checks that an untrusted server certificate fails at
// once with a ConnError: retrying cannot fix it.
func TestCertificateError(t *testing.T) {
	srv := newTLSServer(t, &recorder{})
	c, err := kes.NewClient([]string{srv.URL}, kes.WithAPIKey(testKey)) // system roots only
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	kes.SetSleep(c, s.sleep)
	err = c.IsReady(t.Context())
	if _, ok := errors.AsType[*kes.ConnError](err); !ok {
		t.Fatalf("got %v, want *kes.ConnError", err)
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Fatalf("got %v, want a certificate verification error inside", err)
	}
	if n := len(s.all()); n != 0 {
		t.Fatalf("client retried %d times", n)
	}

	insecure, err := kes.NewClient([]string{srv.URL}, kes.WithAPIKey(testKey), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if err := insecure.IsReady(t.Context()); err != nil {
		t.Fatalf("WithInsecureSkipVerify: %v", err)
	}
}
