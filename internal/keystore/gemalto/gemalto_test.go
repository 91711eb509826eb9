package gemalto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/gemalto"
	"github.com/openkes/kes/internal/keystore/rest"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

const loginPath = "/api/v1/auth/tokens"

func connect(t *testing.T, g *fake.Gemalto, domain string) *gemalto.Store {
	t.Helper()
	s, err := gemalto.Connect(t.Context(), &gemalto.Config{
		Endpoint: g.URL(), Token: fake.GemaltoRefreshToken, Domain: domain, CAPath: g.CAFile(t),
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		return connect(t, fake.NewGemalto(t), "")
	}, storetest.Options{DeleteMissingOK: true})
}

// TestWire checks every request field by field (config.md §9.4).
func TestWire(t *testing.T) {
	g := fake.NewGemalto(t)
	s := connect(t, g, "tenant-a")
	ctx := t.Context()
	if err := s.Create(ctx, "my-key", []byte("c3RvcmVk")); err != nil {
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
	reqs := g.Requests()
	if len(reqs) != 5 {
		t.Fatalf("got %d requests, want 5", len(reqs))
	}
	login := reqs[0]
	if login.Method != "POST" || login.Path != loginPath || login.Header.Get("Authorization") != "" ||
		fmt.Sprint(login.JSON) != fmt.Sprint(map[string]any{"grant_type": "refresh_token", "refresh_token": fake.GemaltoRefreshToken, "domain": "tenant-a"}) {
		t.Errorf("login = %s %s %v", login.Method, login.Path, login.JSON)
	}
	want := []struct {
		method, path, query string
		body                map[string]any
	}{
		{"POST", "/api/v1/vault/secrets", "", map[string]any{"dataType": "seed", "material": "c3RvcmVk", "name": "my-key"}},
		{"POST", "/api/v1/vault/secrets/my-key/export", "type=name", nil},
		{"GET", "/api/v1/vault/secrets", "limit=200&skip=0", nil},
		{"DELETE", "/api/v1/vault/secrets/my-key", "type=name", nil},
	}
	for i, w := range want {
		r := reqs[i+1]
		if r.Method != w.method || r.Path != w.path || r.Query.Encode() != w.query || fmt.Sprint(r.JSON) != fmt.Sprint(w.body) {
			t.Errorf("request %d = %s %s?%s %v\nwant %s %s?%s %v", i+1, r.Method, r.Path, r.Query.Encode(), r.JSON, w.method, w.path, w.query, w.body)
		}
		if got := r.Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer eyJ.") {
			t.Errorf("request %d: Authorization = %q, want the JWT", i+1, got)
		}
	}
}

// TestUpstreamFormat reads secrets as upstream KES creates them (material =
// the stored record) and checks that what the store writes is exactly that.
func TestUpstreamFormat(t *testing.T) {
	g := fake.NewGemalto(t)
	s := connect(t, g, "")
	for _, name := range []string{"vec-created-1", "vec-imported-aes256", "vec-legacy-v1-aes256"} {
		record := vectors.ReadFile(t, filepath.Join("keystore", name))
		g.Put(name, string(record))
		got, err := s.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, record) {
			t.Fatalf("Get(%s) = %q, %v; want the upstream record", name, got, err)
		}
		if err := s.Create(t.Context(), name+"-copy", record); err != nil {
			t.Fatal(err)
		}
		if sec, _ := g.Secret(name + "-copy"); sec.Material != string(record) || sec.DataType != "seed" {
			t.Fatalf("written secret = %+v, want upstream's layout", sec)
		}
	}
	// Bytes that are not UTF-8 cannot be JSON string material: marked.
	if err := s.Create(t.Context(), "binary", []byte{0xff, 0}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := g.Secret("binary"); sec.Material != "openkes:base64:/wA=" {
		t.Errorf("binary material = %q", sec.Material)
	}
}

func TestListPages(t *testing.T) {
	g := fake.NewGemalto(t)
	s := connect(t, g, "")
	var all []string
	for i := range 450 {
		name := fmt.Sprintf("key-%03d", i)
		all = append(all, name)
		g.Put(name, "v")
	}
	g.ResetRequests()
	names, next, err := s.List(t.Context(), "key-", "", 0)
	if err != nil || !slices.Equal(names, all) || next != "" {
		t.Fatalf("List = %d names, next %q, %v; want all 450 sorted", len(names), next, err)
	}
	var skips []string
	for _, r := range g.Requests() {
		if r.Query.Get("limit") != "200" {
			t.Errorf("limit = %q", r.Query.Get("limit"))
		}
		skips = append(skips, r.Query.Get("skip"))
	}
	if !slices.Equal(skips, []string{"0", "200", "400"}) {
		t.Errorf("skips = %q", skips)
	}
	names, next, err = s.List(t.Context(), "key-1", "key-150", 20)
	if err != nil || !slices.Equal(names, all[150:170]) || next != "key-170" {
		t.Errorf("List(key-1, key-150, 20) = %q, %q, %v", names, next, err)
	}
}

// TestRenewal checks that the JWT is renewed at half its duration by the
// store's goroutine, and that Close stops it.
func TestRenewal(t *testing.T) {
	g := fake.NewGemalto(t)
	g.SetTokenDuration(2)
	s := connect(t, g, "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := g.WaitFor(ctx, func(r []fake.VendorRequest) bool { return fake.CountRequests(r, "POST", loginPath) >= 3 })
	if err != nil {
		t.Fatalf("no renewals: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("two renewals of a 2s JWT after %v, want about 2s (half the duration each)", d)
	}
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get with renewed JWT: %v", err)
	}
	s.Close()
	n := fake.CountRequests(g.Requests(), "POST", loginPath)
	s.Close() // twice is fine
	if m := fake.CountRequests(g.Requests(), "POST", loginPath); m != n {
		t.Errorf("logins after Close: %d then %d", n, m)
	}
}

func TestExpiredToken(t *testing.T) {
	g := fake.NewGemalto(t)
	s := connect(t, g, "")
	g.Put("k", "v")
	g.ExpireTokens()
	g.ResetRequests()
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get with expired JWT: %q, %v; want a re-login and success", v, err)
	}
	reqs := g.Requests()
	if len(reqs) != 3 || reqs[1].Path != loginPath || reqs[0].Header.Get("Authorization") == reqs[2].Header.Get("Authorization") {
		t.Fatalf("requests = %+v; want export (401), login, export with the new JWT", reqs)
	}
}

func TestConnectErrors(t *testing.T) {
	g := fake.NewGemalto(t)
	const wrong = "wrong-refresh-token-secret"
	_, err := gemalto.Connect(t.Context(), &gemalto.Config{Endpoint: g.URL(), Token: wrong, CAPath: g.CAFile(t)}, nil)
	var se *rest.StatusError
	if !errors.As(err, &se) || se.Status != 401 || strings.Contains(err.Error(), wrong) {
		t.Errorf("Connect with a wrong token: %v; want a 401 error without the token", err)
	}
	if _, err := gemalto.Connect(t.Context(), &gemalto.Config{Endpoint: g.URL(), Token: fake.GemaltoRefreshToken}, nil); err == nil {
		t.Error("Connect without the fake's CA succeeded")
	}
	if _, err := gemalto.Connect(t.Context(), &gemalto.Config{Token: "x"}, nil); !errors.Is(err, gemalto.ErrNoEndpoint) {
		t.Errorf("no endpoint: %v", err)
	}
	if _, err := gemalto.Connect(t.Context(), &gemalto.Config{Endpoint: g.URL()}, nil); !errors.Is(err, gemalto.ErrNoToken) {
		t.Errorf("no token: %v", err)
	}
	if s := (&gemalto.Config{Endpoint: "https://x", Token: wrong}).String(); strings.Contains(s, wrong) {
		t.Errorf("String() = %q shows the token", s)
	}
}

func TestTLSCADir(t *testing.T) {
	g := fake.NewGemalto(t)
	dir := t.TempDir()
	b, err := os.ReadFile(g.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o600)
	s, err := gemalto.Connect(t.Context(), &gemalto.Config{Endpoint: g.URL(), Token: fake.GemaltoRefreshToken, CAPath: dir}, nil)
	if err != nil {
		t.Fatalf("Connect with CA directory: %v", err)
	}
	s.Close()
}

func TestFailures(t *testing.T) {
	ctx := t.Context()
	g := fake.NewGemalto(t)
	s := connect(t, g, "")
	t.Run("throttled then ok", func(t *testing.T) {
		g.Inject(fake.VendorFault{Method: "POST", Path: "/api/v1/vault/secrets", Status: 429, Body: `{"code":429,"codeDesc":"rate limited"}`, RetryAfter: "0", Times: 2})
		if err := s.Create(ctx, "t", []byte("v")); err != nil {
			t.Fatalf("Create after 429s: %v", err)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		g.Inject(fake.VendorFault{Path: "/api/v1/vault/secrets/t/export", Status: 500, Body: `{"code":1,"codeDesc":"internal"}`})
		if v, err := s.Get(ctx, "t"); err != nil || string(v) != "v" {
			t.Fatalf("Get after a 500: %q, %v", v, err)
		}
		g.Inject(fake.VendorFault{Method: "POST", Path: "/api/v1/vault/secrets", Status: 500, Body: `{"code":1,"codeDesc":"internal error"}`})
		err := s.Create(ctx, "t2", []byte("v"))
		var se *rest.StatusError
		if !errors.As(err, &se) || se.Status != 500 || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Create with 500: %v", err)
		}
		g.Inject(fake.VendorFault{Path: "/api/v1/vault/secrets/t/export", Status: 503, Body: `{}`, Times: rest.DefaultAttempts})
		if _, err := s.Get(ctx, "t"); !keystore.IsUnreachable(err) {
			t.Fatalf("Get with persistent 503: %v, want unreachable", err)
		}
	})
	t.Run("exists and not found", func(t *testing.T) {
		if err := s.Create(ctx, "t", []byte("x")); !errors.Is(err, keystore.ErrExists) {
			t.Fatalf("Create(t) again: %v", err)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get(nope): %v", err)
		}
		if err := s.Delete(ctx, "nope"); err != nil {
			t.Fatalf("Delete(nope): %v, want success as upstream", err)
		}
	})
	t.Run("slower than deadline", func(t *testing.T) {
		g.Inject(fake.VendorFault{Path: "/api/v1/vault/secrets/t/export", Stall: true})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Get(ctx, "t")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("Get past the deadline: %v after %v", err, time.Since(start))
		}
	})
	t.Run("names", func(t *testing.T) {
		g.ResetRequests()
		for _, name := range []string{"", ".", "..", "a/b", "../export", "a?type=id", "a%2Fb", "a#b", `a\b`, "a;b", "a\x00"} {
			if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, rest.ErrInvalidName) {
				t.Errorf("Create(%q) = %v, want invalid name", name, err)
			}
			if _, err := s.Get(ctx, name); !errors.Is(err, rest.ErrInvalidName) {
				t.Errorf("Get(%q) = %v, want invalid name", name, err)
			}
			if err := s.Delete(ctx, name); !errors.Is(err, rest.ErrInvalidName) {
				t.Errorf("Delete(%q) = %v, want invalid name", name, err)
			}
		}
		if n := len(g.Requests()); n != 0 {
			t.Errorf("%d requests sent for invalid names", n)
		}
		// Other characters are escaped into one path segment.
		if err := s.Create(ctx, "with space+ü", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get(ctx, "with space+ü"); err != nil || string(v) != "v" {
			t.Fatalf("Get(with space+ü) = %q, %v", v, err)
		}
	})
}

// TestBodiesClosed runs many calls, failed ones included, and checks that
// they share one connection.
func TestBodiesClosed(t *testing.T) {
	g := fake.NewGemalto(t)
	s := connect(t, g, "")
	ctx := t.Context()
	conns := g.Conns()
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
	g.ExpireTokens()
	g.Inject(fake.VendorFault{Path: "/api/v1/vault/secrets", Status: 429, Body: `{"code":429,"codeDesc":"slow down"}`, Times: 2})
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	if got := g.Conns() - conns; got > 1 {
		t.Errorf("%d new connections for sequential calls, want at most 1 (bodies not drained?)", got)
	}
}
