package entrust_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/entrust"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/rest"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

const (
	loginPath = "/vault/1.0/Login/" + fake.EntrustVaultID + "/"
	renewPath = "/vault/1.0/Renew/"
)

func config(e *fake.Entrust, ca, box string) *entrust.Config {
	return &entrust.Config{
		Endpoint: e.URL(), VaultID: fake.EntrustVaultID, BoxID: box,
		Username: fake.EntrustUser, Password: fake.EntrustPassword, CAPath: ca,
	}
}

func connect(t *testing.T, e *fake.Entrust) *entrust.Store {
	t.Helper()
	s, err := entrust.Connect(t.Context(), config(e, e.CAFile(t), fake.EntrustBoxID), nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keystore.Store {
		return connect(t, fake.NewEntrust(t))
	})
}

// TestWire checks every request field by field (config.md §9.8).
func TestWire(t *testing.T) {
	e := fake.NewEntrust(t)
	s, err := entrust.Connect(t.Context(), config(e, e.CAFile(t), fake.EntrustBoxName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	value := []byte("c3RvcmVk")
	if err := s.Create(ctx, "my-key", value); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := e.Requests()
	if len(reqs) != 6 {
		t.Fatalf("got %d requests, want 6", len(reqs))
	}
	login := reqs[0]
	if login.Method != "POST" || login.Path != loginPath || login.Header.Get("X-Vault-Auth") != "" ||
		fmt.Sprint(login.JSON) != fmt.Sprint(map[string]any{"username": fake.EntrustUser, "password": fake.EntrustPassword}) {
		t.Errorf("login = %s %s %q", login.Method, login.Path, login.Header.Get("X-Vault-Auth"))
	}
	box := fake.EntrustBoxName
	want := []struct {
		path string
		body map[string]any
	}{
		{"/vault/1.0/CreateSecret/", map[string]any{"box_id": box, "name": "my-key", "secret_data": base64.StdEncoding.EncodeToString(value)}},
		{"/vault/1.0/CheckoutSecret/", map[string]any{"box_id": box, "secret_id": "my-key"}},
		{"/vault/1.0/ListSecretIds/", map[string]any{"box_id": box, "max_items": 256.0}},
		{"/vault/1.0/DeleteSecret/", map[string]any{"box_id": box, "secret_id": "my-key"}},
		{"/vault/1.0/GetBox/", map[string]any{"box_id": box}},
	}
	for i, w := range want {
		r := reqs[i+1]
		if r.Method != "POST" || r.Path != w.path || fmt.Sprint(r.JSON) != fmt.Sprint(w.body) ||
			r.Header.Get("Content-Type") != "application/json" || len(r.Query) != 0 {
			t.Errorf("request %d = %s %s %v, want POST %s %v", i+1, r.Method, r.Path, r.JSON, w.path, w.body)
		}
		if got := r.Header.Get("X-Vault-Auth"); len(got) < 16 {
			t.Errorf("request %d: X-Vault-Auth = %q, want the session token", i+1, got)
		}
	}
}

// TestUpstreamFormat reads secrets as upstream KES creates them
// (secret_data = base64 of the stored record) and checks that what the
// store writes is exactly that.
func TestUpstreamFormat(t *testing.T) {
	e := fake.NewEntrust(t)
	s := connect(t, e)
	for _, name := range []string{"vec-created-2", "vec-imported-chacha20", "vec-legacy-v0223-aesgcm"} {
		record := vectors.ReadFile(t, filepath.Join("keystore", name))
		e.Put(name, record, false)
		got, err := s.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, record) {
			t.Fatalf("Get(%s) = %q, %v; want the upstream record", name, got, err)
		}
		if err := s.Create(t.Context(), name+"-copy", record); err != nil {
			t.Fatal(err)
		}
		if sec, _ := e.Secret(name + "-copy"); !bytes.Equal(sec.Data, record) {
			t.Fatalf("written secret_data decodes to %q, want the record", sec.Data)
		}
	}
}

func decodeToken(t *testing.T, r fake.VendorRequest) fake.EntrustNextToken {
	t.Helper()
	s, _ := r.JSON["next_token"].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	var tok fake.EntrustNextToken
	if err != nil || json.Unmarshal(b, &tok) != nil {
		t.Fatalf("next_token %q is not base64 JSON", s)
	}
	return tok
}

// TestListPages lists more names than one KeyControl page; expired
// secrets and empty names never appear.
func TestListPages(t *testing.T) {
	e := fake.NewEntrust(t)
	s := connect(t, e)
	var all []string
	for i := range 600 {
		name := fmt.Sprintf("key-%03d", i)
		if i%100 == 7 {
			e.Put(name, []byte("v"), true) // expired
			continue
		}
		all = append(all, name)
		e.Put(name, []byte("v"), false)
	}
	e.Put("", []byte("v"), false)
	e.Put("zzz", []byte("v"), false)
	e.ResetRequests()
	names, next, err := s.List(t.Context(), "key-", "", 0)
	if err != nil || !slices.Equal(names, all) || next != "" {
		t.Fatalf("List = %d names, next %q, %v; want %d", len(names), next, err, len(all))
	}
	reqs := e.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d list requests, want 3", len(reqs))
	}
	// The first continues before "key-" (after "key"), the next ones with
	// the tokens KeyControl returned.
	for i, ctx := range []string{"key", "key-255", "key-511"} {
		if tok := decodeToken(t, reqs[i]); tok.BoxID != fake.EntrustBoxID || tok.NextCtx != ctx {
			t.Errorf("request %d: next_token = %+v, want next_ctx %q", i, tok, ctx)
		}
	}
	i := slices.Index(all, "key-350")
	names, next, err = s.List(t.Context(), "key-3", "key-350", 10)
	if err != nil || !slices.Equal(names, all[i:i+10]) || next != all[i+10] {
		t.Errorf("List(key-3, key-350, 10) = %q, %q, %v", names, next, err)
	}
	names, _, err = s.List(t.Context(), "", "", 10000)
	if err != nil || len(names) != len(all)+1 || slices.Contains(names, "") {
		t.Errorf("List all = %d names, %v; want %d without the empty name", len(names), err, len(all)+1)
	}
}

// TestRenewal checks that the token is renewed at half its lifetime, and
// that a failed renewal falls back to a login.
func TestRenewal(t *testing.T) {
	e := fake.NewEntrust(t)
	e.SetTokenLifetime(2 * time.Second)
	s := connect(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.WaitFor(ctx, func(r []fake.VendorRequest) bool { return fake.CountRequests(r, "POST", renewPath) >= 1 }); err != nil {
		t.Fatalf("no renewal: %v", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("renewal of a 2s token after %v, want about 1s", d)
	}
	e.Inject(fake.VendorFault{Path: renewPath, Status: 401, Body: `{"error":"Token cannot be renewed"}`})
	if err := e.WaitFor(ctx, func(r []fake.VendorRequest) bool { return fake.CountRequests(r, "POST", loginPath) >= 2 }); err != nil {
		t.Fatalf("no login after a failed renewal: %v", err)
	}
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status after re-login: %v", err)
	}
	s.Close()
	n := len(e.Requests())
	s.Close()
	if m := len(e.Requests()); m != n {
		t.Errorf("requests after Close: %d then %d", n, m)
	}
}

func TestExpiredToken(t *testing.T) {
	e := fake.NewEntrust(t)
	s := connect(t, e)
	e.Put("k", []byte("v"), false)
	e.ExpireTokens()
	e.ResetRequests()
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get with expired token: %q, %v; want a re-login and success", v, err)
	}
	reqs := e.Requests()
	if len(reqs) != 3 || reqs[1].Path != loginPath || reqs[0].Header.Get("X-Vault-Auth") == reqs[2].Header.Get("X-Vault-Auth") {
		t.Fatalf("requests = %+v; want checkout (401), login, checkout with the new token", reqs)
	}
}

func TestConnectErrors(t *testing.T) {
	e := fake.NewEntrust(t)
	ca := e.CAFile(t)
	c := config(e, ca, fake.EntrustBoxID)
	c.Password = "wrong-password-secret"
	_, err := entrust.Connect(t.Context(), c, nil)
	var se *rest.StatusError
	if !errors.As(err, &se) || se.Status != 401 || strings.Contains(err.Error(), c.Password) {
		t.Errorf("Connect with a wrong password: %v", err)
	}
	if strings.Contains(c.String(), c.Password) {
		t.Errorf("String() = %q shows the password", c.String())
	}
	c = config(e, ca, fake.EntrustBoxID)
	c.VaultID = "../sys"
	if _, err := entrust.Connect(t.Context(), c, nil); !errors.Is(err, rest.ErrInvalidName) {
		t.Errorf("vault ID ../sys: %v", err)
	}
	if _, err := entrust.Connect(t.Context(), config(e, "", fake.EntrustBoxID), nil); err == nil {
		t.Error("Connect without the fake's CA succeeded")
	}
	for _, tt := range []struct {
		mod  func(*entrust.Config)
		want error
	}{
		{func(c *entrust.Config) { c.Endpoint = "" }, entrust.ErrNoEndpoint},
		{func(c *entrust.Config) { c.VaultID = "" }, entrust.ErrNoVaultID},
		{func(c *entrust.Config) { c.BoxID = "" }, entrust.ErrNoBoxID},
		{func(c *entrust.Config) { c.Username = "" }, entrust.ErrNoUsername},
		{func(c *entrust.Config) { c.Password = "" }, entrust.ErrNoPassword},
	} {
		c := config(e, ca, fake.EntrustBoxID)
		tt.mod(c)
		if _, err := entrust.Connect(t.Context(), c, nil); !errors.Is(err, tt.want) {
			t.Errorf("Connect = %v, want %v", err, tt.want)
		}
	}
	// A wrong box is found by the status probe.
	s, err := entrust.Connect(t.Context(), config(e, ca, "no-such-box"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Status(t.Context()); !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("Status of a missing box: %v", err)
	}
}

func TestTLSCADir(t *testing.T) {
	e := fake.NewEntrust(t)
	dir := t.TempDir()
	b, err := os.ReadFile(e.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o600)
	s, err := entrust.Connect(t.Context(), config(e, dir, fake.EntrustBoxID), nil)
	if err != nil {
		t.Fatalf("Connect with CA directory: %v", err)
	}
	s.Close()
}

func TestFailures(t *testing.T) {
	ctx := t.Context()
	e := fake.NewEntrust(t)
	s := connect(t, e)
	t.Run("throttled then ok", func(t *testing.T) {
		e.Inject(fake.VendorFault{Path: "/vault/1.0/CreateSecret/", Status: 429, Body: `{"error":"Too many requests"}`, RetryAfter: "0", Times: 2})
		if err := s.Create(ctx, "t", []byte("v")); err != nil {
			t.Fatalf("Create after 429s: %v", err)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		e.Inject(fake.VendorFault{Path: "/vault/1.0/CheckoutSecret/", Status: 500, Body: `{"error":"internal"}`})
		if v, err := s.Get(ctx, "t"); err != nil || string(v) != "v" {
			t.Fatalf("Get after a 500: %q, %v", v, err)
		}
		e.ResetRequests()
		e.Inject(fake.VendorFault{Path: "/vault/1.0/DeleteSecret/", Status: 500, Body: `{"error":"internal error"}`})
		err := s.Delete(ctx, "t")
		var se *rest.StatusError
		if !errors.As(err, &se) || se.Status != 500 || len(e.Requests()) != 1 || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Delete with 500: %v after %d requests; want one try", err, len(e.Requests()))
		}
		e.Inject(fake.VendorFault{Path: "/vault/1.0/GetBox/", Status: 502, Body: `{"error":"bad gateway"}`, Times: rest.DefaultAttempts})
		if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
			t.Fatalf("Status with persistent 502: %v, want unreachable", err)
		}
	})
	t.Run("exists and not found", func(t *testing.T) {
		if err := s.Create(ctx, "t", []byte("x")); !errors.Is(err, keystore.ErrExists) {
			t.Fatalf("Create(t) again: %v", err)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get(nope): %v", err)
		}
		if err := s.Delete(ctx, "nope"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Delete(nope): %v", err)
		}
	})
	t.Run("slower than deadline", func(t *testing.T) {
		e.Inject(fake.VendorFault{Path: "/vault/1.0/CheckoutSecret/", Stall: true})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Get(ctx, "t")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("Get past the deadline: %v after %v", err, time.Since(start))
		}
	})
	t.Run("names", func(t *testing.T) {
		e.ResetRequests()
		for _, name := range []string{"", "a\x00", "a\nb", "\xff\xfe"} {
			if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, rest.ErrInvalidName) {
				t.Errorf("Create(%q) = %v, want invalid name", name, err)
			}
		}
		if n := len(e.Requests()); n != 0 {
			t.Errorf("%d requests sent for invalid names", n)
		}
		// Names travel in JSON bodies only: path characters are harmless.
		if err := s.Create(ctx, "a/../b?c", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get(ctx, "a/../b?c"); err != nil || string(v) != "v" {
			t.Fatalf("Get(a/../b?c) = %q, %v", v, err)
		}
	})
}

// TestBodiesClosed runs many calls, failed ones included, and checks that
// they share one connection.
func TestBodiesClosed(t *testing.T) {
	e := fake.NewEntrust(t)
	s := connect(t, e)
	ctx := t.Context()
	conns := e.Conns()
	for i := range 20 {
		name := fmt.Sprintf("k%d", i)
		if err := s.Create(ctx, name, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, keystore.ErrExists) {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, name+"-missing"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := s.Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.ExpireTokens()
	e.Inject(fake.VendorFault{Path: "/vault/1.0/ListSecretIds/", Status: 429, Body: `{"error":"slow down"}`, Times: 2})
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.Conns() - conns; got > 1 {
		t.Errorf("%d new connections for sequential calls, want at most 1 (bodies not drained?)", got)
	}
}
