package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
)

// hungStore is a key store whose calls do not answer: they block until
// their context ends (a store that honours it), or, with ignoreCtx, until
// release is closed (a client library that ignores it). Each call sends
// its context's error to ended when it returns.
type hungStore struct {
	mem.Store
	ignoreCtx bool
	release   chan struct{}
	ended     chan error
}

func (s *hungStore) hang(ctx context.Context) error {
	if s.ignoreCtx {
		<-s.release
	} else {
		<-ctx.Done()
	}
	s.ended <- ctx.Err()
	return &keystore.UnreachableError{Err: ctx.Err()}
}

func (s *hungStore) Create(ctx context.Context, _ string, _ []byte) error { return s.hang(ctx) }
func (s *hungStore) Delete(ctx context.Context, _ string) error           { return s.hang(ctx) }

func (s *hungStore) Get(ctx context.Context, _ string) ([]byte, error) {
	return nil, s.hang(ctx)
}

func (s *hungStore) List(ctx context.Context, _, _ string, _ int) ([]string, string, error) {
	return nil, "", s.hang(ctx)
}

func (s *hungStore) Status(ctx context.Context) (keystore.State, error) {
	return keystore.State{}, s.hang(ctx)
}

// TestRouteTimeoutEndsStoreCall: a key store call that outlives the route's
// timeout is abandoned and the client gets upstream's timeout answer at the
// deadline, over HTTP/1.1 and HTTP/2, whether or not the store honours its
// context. The handler's goroutine is gone at once; the store call is
// cancelled (or, if it ignores its context, ends when the store returns).
func TestRouteTimeoutEndsStoreCall(t *testing.T) {
	const timeout = 300 * time.Millisecond
	requests := []struct{ method, path, route string }{
		{"PUT", "/v1/key/create/k", "/v1/key/create/"},
		{"POST", "/v1/key/generate/k", "/v1/key/generate/"}, // a cache miss
		{"DELETE", "/v1/key/delete/k", "/v1/key/delete/"},
		{"GET", "/v1/key/list/*", "/v1/key/list/"},
		{"GET", "/v1/ready", "/v1/ready"},
		{"GET", "/v1/status", "/v1/status"},
	}
	routes := make(map[string]api.RouteConfig)
	for _, r := range requests {
		routes[r.route] = api.RouteConfig{Timeout: timeout}
	}
	for _, ignoreCtx := range []bool{false, true} {
		for _, h2 := range []bool{false, true} {
			name := map[bool]string{false: "honours-ctx", true: "ignores-ctx"}[ignoreCtx] + "/" + map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
			t.Run(name, func(t *testing.T) {
				store := &hungStore{ignoreCtx: ignoreCtx, release: make(chan struct{}), ended: make(chan error, 1)}
				admin, err := kes.GenerateAPIKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				ts := startServer(t, serverOptions{
					store:  func(string) keystore.Store { return store },
					routes: routes,
					admin:  admin.Identity(),
				})
				c := ts.client(t, apiKeyCert(t, admin.Secret()), h2)
				for _, req := range requests {
					start := time.Now()
					r := doWithin(t, c, timeout+10*time.Second, req.method, ts.URL+req.path, "{}")
					elapsed := time.Since(start)
					if r.Status != http.StatusServiceUnavailable || errorMessage(t, r) != "request timeout exceeded" {
						t.Fatalf("%s %s: %d %s; want 503 request timeout exceeded", req.method, req.path, r.Status, r.Body)
					}
					if r.Header.Get("Content-Type") != "application/json" {
						t.Errorf("%s %s: Content-Type %q", req.method, req.path, r.Header.Get("Content-Type"))
					}
					if elapsed < timeout || elapsed > timeout+5*time.Second {
						t.Errorf("%s %s: answered after %v, want the route timeout %v", req.method, req.path, elapsed, timeout)
					}
					waitGone(t, "internal/api.(*Server).serve(")
					if ignoreCtx {
						if !goroutineWith("api_test.(*hungStore).hang(") {
							t.Fatalf("%s %s: the store call is not running: it was not abandoned", req.method, req.path)
						}
						store.release <- struct{}{}
					}
					if err := <-store.ended; !ignoreCtx && err == nil {
						t.Errorf("%s %s: the store call ended with a live context", req.method, req.path)
					}
					waitGone(t, "api_test.(*hungStore).hang(")
				}
			})
		}
	}
}

// doWithin is do with a deadline, so that a server that never answers
// fails the test instead of hanging it.
func doWithin(t *testing.T, c *http.Client, d time.Duration, method, url, body string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// waitGone waits until no goroutine runs the function named by frame (as
// runtime.Stack prints it). A goroutine's exit has no channel to wait on,
// so this polls, as goroutine leak checkers do.
func waitGone(t *testing.T, frame string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for goroutineWith(frame) {
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine still runs %s:\n%s", frame, stacks())
		}
		<-tick.C
	}
}

func goroutineWith(frame string) bool { return bytes.Contains(stacks(), []byte(frame)) }

func stacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
