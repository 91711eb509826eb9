package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
)

// deadStore is a key store that cannot be reached: every call fails at
// once with an unreachable error, as a store whose host refuses
// connections.
type deadStore struct{ mem.Store }

var errRefused = &keystore.UnreachableError{Err: errors.New("dial tcp 127.0.0.1:8200: connection refused")}

func (*deadStore) Create(context.Context, string, []byte) error { return errRefused }
func (*deadStore) Delete(context.Context, string) error         { return errRefused }
func (*deadStore) Get(context.Context, string) ([]byte, error)  { return nil, errRefused }
func (*deadStore) Status(context.Context) (keystore.State, error) {
	return keystore.State{}, errRefused
}
func (*deadStore) List(context.Context, string, string, int) ([]string, string, error) {
	return nil, "", errRefused
}

// TestOfflineErrorLogThinned: once the key store is known to be offline,
// requests fail fast, and their error lines are thinned to at most one a
// second, which counts the ones left out; upstream writes one line per
// request (each after seconds of waiting). Every request still gets its
// 502 answer.
func TestOfflineErrorLogThinned(t *testing.T) {
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOptions{
		store: func(string) keystore.Store { return new(deadStore) },
		admin: admin.Identity(),
	})
	c := ts.client(t, apiKeyCert(t, admin.Secret()), false)
	const n = 400
	start := time.Now()
	for i := range n {
		r := do(t, c, "POST", ts.URL+"/v1/key/create/k", nil)
		if r.Status != http.StatusBadGateway || errorMessage(t, r) != "failed to create key" {
			t.Fatalf("create %d: %d %s; want 502 failed to create key", i, r.Status, r.Body)
		}
	}
	elapsed := time.Since(start)

	var lines, offline, suppressed int
	for _, line := range strings.Split(strings.TrimSpace(ts.Errors.String()), "\n") {
		if !strings.Contains(line, "connection refused") {
			continue
		}
		lines++
		if strings.Contains(line, keystore.ErrOffline.Error()) {
			offline++
		}
		if strings.Contains(line, "suppressed=") {
			suppressed++
		}
	}
	t.Logf("%d failed creates in %v: %d error lines (%d while known offline, %d counting left-out ones)", n, elapsed, lines, offline, suppressed)
	// The first failures (until the cache counts the store down) are
	// real store calls, each logged; then one line a second at most.
	if max := 3 + 1 + int(elapsed/time.Second); lines > max {
		t.Errorf("%d error lines for %d requests in %v; want at most %d", lines, n, elapsed, max)
	}
	if offline == 0 {
		t.Error("no error line says the key store is offline")
	}
	if offline > 1 && suppressed == 0 {
		t.Error("later offline lines do not say how many were left out")
	}
}
