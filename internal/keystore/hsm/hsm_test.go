//go:build cgo

package hsm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/hsm/hsmtest"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

const wrapKey = "kes-wrap"

// newToken returns a SoftHSM2 token holding a non-extractable wrapping key.
func newToken(t *testing.T) *hsmtest.Token {
	t.Helper()
	tok := hsmtest.New(t, "kes-test")
	tok.CreateKey(t, wrapKey, false)
	return tok
}

// config returns the hsm section for tok's wrapping key.
func config(tok *hsmtest.Token) *hsm.Config {
	return &hsm.Config{Module: tok.Module, Token: tok.Label, PIN: tok.PIN, Key: wrapKey}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// wrap wraps inner with c or fails t; the test closes the store.
func wrap(t *testing.T, inner keystore.Store, c *hsm.Config) keystore.Store {
	t.Helper()
	s, err := hsm.Wrap(t.Context(), inner, c, quiet())
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	return s
}

func newFS(t *testing.T, dir string) *fs.Store {
	t.Helper()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceFS(t *testing.T) {
	tok := newToken(t)
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		return wrap(t, newFS(t, t.TempDir()), config(tok))
	}, storetest.Options{MaxValueSize: hsm.MaxValueSize})
}

var vaultSeq atomic.Int64

func TestConformanceVault(t *testing.T) {
	tok := newToken(t)
	srv := vaulttest.Start(t, nil)
	srv.EnableKV(t, "kv-hsm", "v1")
	srv.WritePolicy(t, "kes-hsm", `path "kv-hsm/*" { capabilities = ["create", "read", "update", "delete", "list"] }`)
	srv.AppRole(t, "approle-hsm", "kes", "role-hsm", "secret-hsm", map[string]any{"token_policies": "kes-hsm", "token_ttl": "1h"})
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		inner, err := vault.Connect(t.Context(), &vault.Config{
			Endpoint: srv.URL(), Engine: "kv-hsm", Prefix: fmt.Sprintf("t%d", vaultSeq.Add(1)),
			AppRole: &vault.AppRole{Engine: "approle-hsm", ID: "role-hsm", Secret: "secret-hsm"},
			Logger:  quiet(),
		})
		if err != nil {
			t.Fatalf("vault.Connect: %v", err)
		}
		return wrap(t, inner, config(tok))
	}, storetest.Options{
		DeleteMissingOK: true, MaxValueSize: hsm.MaxValueSize,
		ReplaceUnsupported: true, // K/V v1 has no check-and-set; the wrapper passes Vault's refusal on
	})
}

// TestConnectFailures: a wrong PIN, a missing key, an extractable key, a
// missing token or module fail Wrap with an error that says which, write
// nothing, and close the inner store.
func TestConnectFailures(t *testing.T) {
	tok := newToken(t)
	tok.CreateKey(t, "exportable", true)
	slot := uint(987654)
	tests := []struct {
		name   string
		change func(c *hsm.Config)
		want   func(error) bool
	}{
		{"wrong PIN", func(c *hsm.Config) { c.PIN = "0000" }, func(err error) bool { return errors.Is(err, hsm.ErrPIN) }},
		{"key missing", func(c *hsm.Config) { c.Key = "no-such-key" }, func(err error) bool { return errors.Is(err, hsm.ErrNoKey) }},
		{"extractable key", func(c *hsm.Config) { c.Key = "exportable" }, func(err error) bool { return errors.Is(err, hsm.ErrExtractable) }},
		{"token missing", func(c *hsm.Config) { c.Token = "no-such-token" }, keystore.IsUnreachable},
		{"slot missing", func(c *hsm.Config) { c.Token, c.Slot = "", &slot }, keystore.IsUnreachable},
		{"module missing", func(c *hsm.Config) { c.Module = t.TempDir() + "/missing.so" }, func(err error) bool { return err != nil }},
		{"no key label", func(c *hsm.Config) { c.Key = "" }, func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config(tok)
			tt.change(c)
			inner := &closeCounter{Store: newFS(t, t.TempDir())}
			_, err := hsm.Wrap(t.Context(), inner, c, quiet())
			if !tt.want(err) {
				t.Fatalf("Wrap = %v", err)
			}
			if inner.closed.Load() != 1 {
				t.Errorf("inner store closed %d times, want 1", inner.closed.Load())
			}
			if names, _, _ := inner.List(t.Context(), "", "", 0); len(names) != 0 {
				t.Errorf("Wrap wrote %v", names)
			}
		})
	}
	// The PIN is in no error.
	c := config(tok)
	c.PIN = "secret-pin-9876"
	_, err := hsm.Wrap(t.Context(), newFS(t, t.TempDir()), c, quiet())
	if err == nil || strings.Contains(err.Error(), c.PIN) {
		t.Errorf("Wrap with a wrong PIN = %v", err)
	}
}

// TestPINFileAndSlot: the PIN may come from a file (a trailing newline is
// not part of it) and the token may be chosen by slot number.
func TestPINFileAndSlot(t *testing.T) {
	tok := newToken(t)
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	slot := tok.Slot(t)
	s := wrap(t, newFS(t, t.TempDir()), &hsm.Config{Module: tok.Module, Slot: &slot, PINFile: pinFile, Key: wrapKey})
	defer s.Close()
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}

type closeCounter struct {
	keystore.Store
	closed atomic.Int32
}

func (c *closeCounter) Close() error {
	c.closed.Add(1)
	return c.Store.Close()
}

// TestUnreachable: a library reset with the token gone fails calls with an
// UnreachableError (the cache's fail-fast logic counts on it); once the
// token is back and the library reset again, the same store works.
func TestUnreachable(t *testing.T) {
	tok := newToken(t)
	s := wrap(t, newFS(t, t.TempDir()), config(tok))
	defer s.Close()
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	hidden := tok.Dir + ".away"
	mustRename(t, tok.Dir, hidden)
	tok.Finalize(t) // the library forgets the token
	if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get with the token gone = %v, want an UnreachableError", err)
	}
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
		t.Fatalf("Status with the token gone = %v, want an UnreachableError", err)
	}
	if err := s.Create(ctx, "k2", []byte("v")); !keystore.IsUnreachable(err) {
		t.Fatalf("Create with the token gone = %v, want an UnreachableError", err)
	}
	if _, err := s.Get(ctx, "k2"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("a failed Create wrote k2: Get = %v", err)
	}
	mustRename(t, hidden, tok.Dir)
	tok.Finalize(t)
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after the token is back = %q, %v", v, err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after the token is back: %v", err)
	}
}

// TestKeyDeletedAtRuntime: the wrapping key destroyed under a running store
// fails reads with ErrNoKey, not ErrNotFound (the KES key exists).
func TestKeyDeletedAtRuntime(t *testing.T) {
	tok := newToken(t)
	s := wrap(t, newFS(t, t.TempDir()), config(tok))
	defer s.Close()
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	tok.DeleteKey(t, wrapKey)
	tok.DropSessions(t) // cached object handles go with the sessions
	_, err := s.Get(ctx, "k")
	if !errors.Is(err, hsm.ErrNoKey) || errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get with the key gone = %v, want ErrNoKey", err)
	}
}

// TestSessionsDroppedUnderLoad: while 16 goroutines create and read keys,
// the token's sessions are closed under them five times (as when a token is
// pulled and put back) and every call succeeds on a re-opened session. The
// sessions are closed while the callers wait for a session, not inside a
// PKCS#11 call: SoftHSM2 crashes when a session is closed under a running
// call (a vendor library's business), and a library finalized under running
// calls is undefined behaviour in PKCS#11 (TestUnreachable finalizes it
// between calls).
func TestSessionsDroppedUnderLoad(t *testing.T) {
	tok := newToken(t)
	var logs lockedBuffer
	s, err := hsm.Wrap(t.Context(), newFS(t, t.TempDir()),
		&hsm.Config{Module: tok.Module, Token: tok.Label, PIN: tok.PIN, Key: wrapKey, Sessions: 4},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	const workers = 16
	progress := make(chan struct{}, 1024)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := 0; ; i++ {
				if ctx.Err() != nil {
					errs <- nil
					return
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				value := []byte("value of " + name)
				err := s.Create(ctx, name, value)
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("Create %s: %w", name, err)
					return
				}
				got, err := s.Get(ctx, name)
				if (err != nil || string(got) != string(value)) && ctx.Err() == nil {
					errs <- fmt.Errorf("Get %s = %q, %w", name, got, err)
					return
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	waitProgress := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-progress:
			case err := <-errs:
				cancel()
				t.Fatal(err)
			}
		}
	}
	waitProgress(50)
	for range 5 {
		hsm.Quiesce(s, func() { tok.DropSessions(t) })
		waitProgress(50)
	}
	cancel()
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(logs.String(), "hsm: sessions lost"); n != 5 {
		t.Errorf("%d session losses logged, want 5 (one per drop):\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), tok.PIN) {
		t.Error("the log holds the PIN")
	}
	ops, failed := hsm.Counters()
	if ops == 0 {
		t.Errorf("hsm.Counters() = %d, %d: no operations counted", ops, failed)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
