package aws_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/aws"
)

// failFirst answers the first n requests of op with the given AWS error
// and forwards the rest.
func failFirst(op string, n, status int, code string) func(http.ResponseWriter, *http.Request, *proxyRequest) bool {
	return func(w http.ResponseWriter, _ *http.Request, pr *proxyRequest) bool {
		if pr.Op != op || pr.N > n {
			return false
		}
		awsError(w, status, code, "injected by the test proxy")
		return true
	}
}

// TestRetried checks that throttling and 5xx answers are retried until AWS
// answers, for each operation.
func TestRetried(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	s := connect(t, testConfig(p.URL()))
	ctx := t.Context()
	tests := []struct {
		op     string
		status int
		code   string
		call   func() error
	}{
		{"CreateSecret", 400, "ThrottlingException", func() error { return s.Create(ctx, "k", []byte("v")) }},
		{"GetSecretValue", 500, "InternalServiceError", func() error { _, err := s.Get(ctx, "k"); return err }},
		{"ListSecrets", 429, "TooManyRequestsException", func() error { _, _, err := s.List(ctx, "", "", 0); return err }},
		{"GetSecretValue", 503, "ServiceUnavailable", func() error { _, err := s.Get(ctx, "k"); return err }},
		{"DeleteSecret", 400, "ThrottlingException", func() error { return s.Delete(ctx, "k") }},
	}
	for _, tt := range tests {
		t.Run(tt.op+"/"+tt.code, func(t *testing.T) {
			p.reset()
			p.setHook(failFirst(tt.op, 2, tt.status, tt.code))
			defer p.setHook(nil)
			if err := tt.call(); err != nil {
				t.Fatalf("%s after 2 x %d %s: %v", tt.op, tt.status, tt.code, err)
			}
			// Two failures and a success; one more attempt is allowed for
			// the SDK's retry of a response lost on a closed connection
			// (aws/aws-sdk-go-v2#2737), which the proxy cannot tell apart.
			if n := len(p.requests(tt.op)); n < 3 || n > aws.DefaultMaxAttempts {
				t.Fatalf("%s: %d attempts, want 3", tt.op, n)
			}
		})
	}
}

// TestRetryBounded checks that a throttling that does not end fails after
// MaxAttempts attempts with a store error (not found, exists and
// unreachable are all wrong here) that names the operation.
func TestRetryBounded(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	for _, attempts := range []int{0, 2} {
		c := testConfig(p.URL())
		c.MaxAttempts = attempts
		s := connect(t, c)
		p.reset()
		p.setHook(failFirst("GetSecretValue", 1000, 400, "ThrottlingException"))
		_, err := s.Get(t.Context(), "k")
		want := attempts
		if want == 0 {
			want = aws.DefaultMaxAttempts
		}
		if n := len(p.requests("GetSecretValue")); n != want {
			t.Errorf("MaxAttempts %d: %d attempts, want %d", attempts, n, want)
		}
		switch {
		case err == nil:
			t.Fatalf("MaxAttempts %d: Get succeeded under endless throttling", attempts)
		case errors.Is(err, keystore.ErrNotFound), errors.Is(err, keystore.ErrExists), keystore.IsUnreachable(err):
			t.Fatalf("MaxAttempts %d: Get: %v, want a plain store error", attempts, err)
		case !strings.HasPrefix(err.Error(), `aws: read key "k": `) || !strings.Contains(err.Error(), "ThrottlingException"):
			t.Fatalf("MaxAttempts %d: Get: error %q does not name the operation and the cause", attempts, err)
		}
	}
}

// TestDecryptionFailure checks that AWS's DecryptionFailure (the KMS key
// cannot decrypt the secret) is a store error, not retried and not "not
// found".
func TestDecryptionFailure(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	s := connect(t, testConfig(p.URL()))
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.reset()
	p.setHook(failFirst("GetSecretValue", 1000, 400, "DecryptionFailure"))
	_, err := s.Get(t.Context(), "k")
	if err == nil || errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "DecryptionFailure") {
		t.Fatalf("Get under DecryptionFailure: %v, want a store error naming DecryptionFailure", err)
	}
	if n := len(p.requests("GetSecretValue")); n != 1 {
		t.Fatalf("DecryptionFailure retried: %d attempts", n)
	}
}

// TestSlowAnswer checks that an answer slower than the caller's deadline
// ends the call at the deadline, also while the store waits between
// retries.
func TestSlowAnswer(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	release := make(chan struct{})
	defer close(release) // before the proxy's Close, which waits for handlers
	const limit = 300 * time.Millisecond

	t.Run("stalled", func(t *testing.T) {
		s := connect(t, testConfig(p.URL()))
		p.setHook(func(_ http.ResponseWriter, r *http.Request, pr *proxyRequest) bool {
			if pr.Op == "" {
				return false
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return true
		})
		defer p.setHook(nil)
		for name, call := range map[string]func(ctx context.Context) error{
			"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
			"Create": func(ctx context.Context) error { return s.Create(ctx, "k", []byte("v")) },
			"Delete": func(ctx context.Context) error { return s.Delete(ctx, "k") },
			"List":   func(ctx context.Context) error { _, _, err := s.List(ctx, "", "", 0); return err },
		} {
			start := time.Now()
			err := call(deadline(t, limit))
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v, want context.DeadlineExceeded", name, err)
			}
			if took > limit+time.Second {
				t.Errorf("%s returned after %v, deadline was %v", name, took, limit)
			}
		}
	})

	t.Run("backoff", func(t *testing.T) {
		c := testConfig(p.URL())
		c.MaxAttempts, c.MaxBackoff = 10, time.Minute
		s := connect(t, c)
		p.setHook(failFirst("GetSecretValue", 1000, 503, "ServiceUnavailable"))
		defer p.setHook(nil)
		start := time.Now()
		_, err := s.Get(deadline(t, limit), "k")
		took := time.Since(start)
		if err == nil || took > limit+time.Second {
			t.Fatalf("Get under endless 503 with 1m backoffs: %v after %v, want to end at the %v deadline", err, took, limit)
		}
	})
}

// TestBodiesClosed checks that the store closes every response body,
// errors included. A body left open holds its connection open for good, so
// once the store is closed (it drops its idle connections), every
// connection it opened must close; and it must have reused them rather
// than opened one per call.
func TestBodiesClosed(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	s, err := aws.Connect(t.Context(), testConfig(p.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Three failures, then the fourth (last) attempt succeeds.
	p.setHook(failFirst("GetSecretValue", 3, 500, "InternalServiceError"))
	const rounds = 10
	for range rounds {
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, "k", []byte("v")); !errors.Is(err, keystore.ErrExists) {
			t.Fatal(err)
		}
		if _, _, err := s.List(ctx, "", "", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := s.Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	calls := len(p.requests(""))
	// The SDK drops the connection of some error answers (3 injected
	// 500s, one exists and one not-found per round); a leaked body would
	// cost a connection per call.
	if n, errAnswers := p.conns.Load(), int64(3+2*rounds); n > 1+errAnswers {
		for _, r := range p.requests("") {
			t.Logf("%s #%d on connection %d", r.Op, r.N, r.Conn)
		}
		t.Fatalf("%d calls opened %d connections", calls, n)
	}
	t.Logf("%d calls over %d connections", calls, p.conns.Load())
	s.Close()
	p.waitClosed(t)
}
