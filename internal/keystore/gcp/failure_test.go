package gcp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
)

// TestRetry checks that throttling (RESOURCE_EXHAUSTED) and a briefly
// unavailable service are retried until the call succeeds.
func TestRetry(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	for _, code := range []codes.Code{codes.ResourceExhausted, codes.Unavailable} {
		t.Run(code.String(), func(t *testing.T) {
			name := "retry-" + strings.ToLower(code.String())
			before := len(g.Requests())
			g.Fail(fake.GCPFailure{Method: "CreateSecret", Code: code}, fake.GCPFailure{Method: "CreateSecret", Code: code},
				fake.GCPFailure{Method: "AddSecretVersion", Code: code})
			if err := s.Create(t.Context(), name, []byte("v")); err != nil {
				t.Fatalf("Create: %v", err)
			}
			g.Fail(fake.GCPFailure{Method: "AccessSecretVersion", Code: code}, fake.GCPFailure{Method: "AccessSecretVersion", Code: code})
			if v, err := s.Get(t.Context(), name); err != nil || string(v) != "v" {
				t.Fatalf("Get = %q, %v", v, err)
			}
			g.Fail(fake.GCPFailure{Method: "ListSecrets", Code: code})
			if names, _, err := s.List(t.Context(), name, "", 0); err != nil || !slices.Equal(names, []string{name}) {
				t.Fatalf("List = %q, %v", names, err)
			}
			g.Fail(fake.GCPFailure{Method: "DeleteSecret", Code: code})
			if err := s.Delete(t.Context(), name); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			want := []string{"CreateSecret", "CreateSecret", "CreateSecret", "AddSecretVersion", "AddSecretVersion",
				"AccessSecretVersion", "AccessSecretVersion", "AccessSecretVersion", "ListSecrets", "ListSecrets",
				"DeleteSecret", "DeleteSecret"}
			if got := methods(g.Requests()[before:]); !slices.Equal(got, want) {
				t.Fatalf("requests = %q, want %q", got, want)
			}
		})
	}
}

// TestUnreachable: a service that stays UNAVAILABLE, or is not there at
// all, is reported as unreachable once the retries end, within the
// caller's deadline.
func TestUnreachable(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	t.Run("unavailable", func(t *testing.T) {
		for range 100 {
			g.Fail(fake.GCPFailure{Code: codes.Unavailable})
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := s.Get(ctx, "k")
		if !keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get: got %v, want unreachable", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("Get returned after %v, past the 1s deadline", d)
		}
		if n := countMethod(g.Requests(), "AccessSecretVersion"); n < 2 {
			t.Fatalf("%d attempts, want retries", n)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		g.Stop()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
			t.Fatalf("Get: got %v, want unreachable", err)
		}
		if err := s.Create(ctx, "k", []byte("secret-value")); !keystore.IsUnreachable(err) {
			t.Fatalf("Create: got %v, want unreachable", err)
		}
		if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
			t.Fatalf("Status: got %v, want unreachable", err)
		}
	})
}

// TestSlow: an answer slower than the caller's deadline makes the call
// return at the deadline with the context's error.
func TestSlow(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	release := g.Stall("AccessSecretVersion")
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Get(ctx, "k")
	d := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get: got %v, want context.DeadlineExceeded", err)
	}
	if d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Get returned after %v, want at the 300ms deadline", d)
	}
	select {
	case m := <-g.Stalled():
		if m != "AccessSecretVersion" {
			t.Fatalf("stalled %s", m)
		}
	default:
		t.Fatal("the call never reached the service")
	}
}

// TestErrors checks the codes Secret Manager answers with map to the
// store's errors, and that no error carries the stored value.
func TestErrors(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	ctx := t.Context()
	value := []byte("do-not-print-this-value")
	if err := s.Create(ctx, "k", value); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, "k", value)
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create of existing key: %v", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(missing): %v", err)
	}
	if err := s.Delete(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Delete(missing): %v", err)
	}
	// A disabled or destroyed version 1: the key exists but cannot be read.
	for _, state := range []secretmanagerpb.SecretVersion_State{secretmanagerpb.SecretVersion_DISABLED, secretmanagerpb.SecretVersion_DESTROYED} {
		name := "k-" + strings.ToLower(state.String())
		g.PutSecret(name, value)
		g.SetVersionState(name, 1, state)
		_, err := s.Get(ctx, name)
		if err == nil || errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Get of %s version 1: got %v, want FAILED_PRECONDITION", state, err)
		}
		if err := s.Create(ctx, name, []byte("other")); !errors.Is(err, keystore.ErrExists) {
			t.Errorf("Create over %s version 1: got %v, want keystore.ErrExists", state, err)
		}
	}
	// Other failures are neither not-found nor unreachable, and name the
	// store and the operation.
	g.Fail(fake.GCPFailure{Method: "AccessSecretVersion", Code: codes.PermissionDenied})
	_, err = s.Get(ctx, "k")
	if err == nil || errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || !strings.HasPrefix(err.Error(), `gcp: read key "k": `) {
		t.Fatalf("Get with PERMISSION_DENIED: %v", err)
	}
	g.Fail(fake.GCPFailure{Method: "AddSecretVersion", Code: codes.Internal})
	err = s.Create(ctx, "k2", value)
	if err == nil || bytes.Contains([]byte(err.Error()), value) {
		t.Fatalf("Create with INTERNAL: %v", err)
	}
}

// TestCrashWindow: upstream KES could leave a secret without version 1 when
// AddSecretVersion failed (or the process died) after CreateSecret. No
// create of that name succeeded, so no key is lost; Get reports it as not
// found and the next Create completes the secret instead of reporting the
// name as taken forever (upstream did).
func TestCrashWindow(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	ctx := t.Context()

	g.Fail(fake.GCPFailure{Method: "AddSecretVersion", Code: codes.Internal})
	if err := s.Create(ctx, "k", []byte("lost")); err == nil || errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create with failing AddSecretVersion: %v", err)
	}
	if v, ok := g.Versions("k"); !ok || len(v) != 0 {
		t.Fatalf("secret after the failed create: %q, %v; want one without versions", v, ok)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a secret without version 1: got %v, want keystore.ErrNotFound", err)
	}
	// Listed, as upstream lists every secret of the project.
	if names, _, err := s.List(ctx, "", "", 0); err != nil || !slices.Equal(names, []string{"k"}) {
		t.Fatalf("List = %q, %v", names, err)
	}
	if err := s.Create(ctx, "k", []byte("kept")); err != nil {
		t.Fatalf("Create completing the secret: %v", err)
	}
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "kept" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, _ := g.Versions("k"); len(v) != 1 {
		t.Fatalf("%d versions, want 1", len(v))
	}

	// Deleting such a secret works too.
	g.PutSecret("empty")
	if err := s.Delete(ctx, "empty"); err != nil {
		t.Fatalf("Delete of a secret without versions: %v", err)
	}
}

// TestCrashWindowRace: creates racing to complete one secret without
// version 1: exactly one succeeds and its value is the key.
func TestCrashWindowRace(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	g.PutSecret("empty")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Create(t.Context(), "empty", fmt.Appendf(nil, "value-%d", i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("creates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, keystore.ErrExists):
			t.Errorf("create %d: %v, want keystore.ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	if v, err := s.Get(t.Context(), "empty"); err != nil || string(v) != fmt.Sprintf("value-%d", winner) {
		t.Fatalf("Get = %q, %v; want the winner's value-%d", v, err, winner)
	}
}

// TestLostAnswers: a call that took effect but whose answer was lost is
// retried; the retry's ALREADY_EXISTS or extra version still ends in a
// successful create of exactly the value.
func TestLostAnswers(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	ctx := t.Context()
	g.Fail(fake.GCPFailure{Method: "CreateSecret", Code: codes.Unavailable, After: true})
	if err := s.Create(ctx, "a", []byte("va")); err != nil {
		t.Fatalf("Create after a lost CreateSecret answer: %v", err)
	}
	g.Fail(fake.GCPFailure{Method: "AddSecretVersion", Code: codes.Unavailable, After: true})
	if err := s.Create(ctx, "b", []byte("vb")); err != nil {
		t.Fatalf("Create after a lost AddSecretVersion answer: %v", err)
	}
	for name, want := range map[string]string{"a": "va", "b": "vb"} {
		if v, err := s.Get(ctx, name); err != nil || string(v) != want {
			t.Errorf("Get(%s) = %q, %v", name, v, err)
		}
	}
	if v, _ := g.Versions("b"); len(v) != 2 || string(v[0]) != "vb" {
		t.Fatalf("versions of b = %q; want the value twice (the retry added version 2)", v)
	}
}

// TestStatusConnections: repeated status probes reuse the probe's
// connection instead of opening one each. (Over HTTP/2 an unread answer
// would not show here: the probe's draining and closing of each body is
// not checked by this test.)
func TestStatusConnections(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	before := g.Connections()
	for range 10 {
		if _, err := s.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.Connections() - before; n > 1 {
		t.Fatalf("10 probes opened %d connections", n)
	}
}
