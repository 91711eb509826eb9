package fortanix_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/fortanix"
	"github.com/openkes/kes/internal/keystore/rest"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

func connect(t *testing.T, f *fake.Fortanix, group string) *fortanix.Store {
	t.Helper()
	s, err := fortanix.Connect(t.Context(), &fortanix.Config{
		Endpoint: f.URL(), GroupID: group, APIKey: fake.FortanixAPIKey, CAPath: f.CAFile(t),
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keystore.Store {
		return connect(t, fake.NewFortanix(t), "")
	})
}

// TestConformanceExclusiveStart runs the listing tests against a DSM whose
// start is exclusive.
func TestConformanceExclusiveStart(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keystore.Store {
		f := fake.NewFortanix(t)
		f.SetStartExclusive(true)
		return connect(t, f, "")
	})
}

// TestConnect checks the start-up sequence of config.md §9.3: health,
// session auth with the API key verbatim, session terminate with the
// session token.
func TestConnect(t *testing.T) {
	f := fake.NewFortanix(t)
	connect(t, f, "")
	reqs := f.Requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3: %+v", len(reqs), reqs)
	}
	want := []struct{ method, path string }{
		{"GET", "/sys/v1/health"}, {"POST", "/sys/v1/session/auth"}, {"POST", "/sys/v1/session/terminate"},
	}
	for i, w := range want {
		if reqs[i].Method != w.method || reqs[i].Path != w.path {
			t.Errorf("request %d = %s %s, want %s %s", i, reqs[i].Method, reqs[i].Path, w.method, w.path)
		}
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Basic "+fake.FortanixAPIKey {
		t.Errorf("session auth Authorization = %q", got)
	}
	if got := reqs[2].Header.Get("Authorization"); !strings.HasPrefix(got, "Bearer ") || len(got) < 10 {
		t.Errorf("terminate Authorization = %q, want the session token", got)
	}
	if n := f.Sessions(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
}

func TestConnectErrors(t *testing.T) {
	f := fake.NewFortanix(t)
	ca := f.CAFile(t)
	const wrongKey = "d3Jvbmc6a2V5LXNlY3JldA=="
	_, err := fortanix.Connect(t.Context(), &fortanix.Config{Endpoint: f.URL(), APIKey: wrongKey, CAPath: ca}, nil)
	if err == nil || keystore.IsUnreachable(err) || strings.Contains(err.Error(), wrongKey) {
		t.Errorf("Connect with a wrong API key: %v; want an authentication error without the key", err)
	}
	if _, err := fortanix.Connect(t.Context(), &fortanix.Config{Endpoint: f.URL(), APIKey: fake.FortanixAPIKey}, nil); err == nil {
		t.Error("Connect without the fake's CA succeeded")
	}
	if _, err := fortanix.Connect(t.Context(), &fortanix.Config{APIKey: "x"}, nil); !errors.Is(err, fortanix.ErrNoEndpoint) {
		t.Errorf("no endpoint: %v", err)
	}
	if _, err := fortanix.Connect(t.Context(), &fortanix.Config{Endpoint: f.URL()}, nil); !errors.Is(err, fortanix.ErrNoAPIKey) {
		t.Errorf("no API key: %v", err)
	}
	f.Inject(fake.VendorFault{Path: "/sys/v1/health", Status: 500, Body: `{"message":"down"}`, Times: 10})
	if _, err := fortanix.Connect(t.Context(), &fortanix.Config{Endpoint: f.URL(), APIKey: fake.FortanixAPIKey, CAPath: ca}, nil); err == nil {
		t.Error("Connect with failing health check succeeded")
	}
}

// TestTLSCADir trusts the fake through a directory of CA files.
func TestTLSCADir(t *testing.T) {
	f := fake.NewFortanix(t)
	dir := t.TempDir()
	b, err := os.ReadFile(f.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o600)
	os.WriteFile(filepath.Join(dir, "fortanix.pem"), b, 0o600)
	s, err := fortanix.Connect(t.Context(), &fortanix.Config{Endpoint: f.URL(), APIKey: fake.FortanixAPIKey, CAPath: dir}, nil)
	if err != nil {
		t.Fatalf("Connect with CA directory: %v", err)
	}
	s.Close()
}

// TestWire checks every request field by field (config.md §9.3).
func TestWire(t *testing.T) {
	for _, group := range []string{"", "8b2f0e2a-group"} {
		t.Run("group="+group, func(t *testing.T) {
			f := fake.NewFortanix(t)
			s := connect(t, f, group)
			f.ResetRequests()
			ctx := t.Context()
			value := []byte("c3RvcmVkIHZhbHVl")
			if err := s.Create(ctx, "my-key", value); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "my-key"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "my-key"); err != nil {
				t.Fatal(err)
			}
			reqs := f.Requests()
			if len(reqs) != 4 {
				t.Fatalf("got %d requests, want 4", len(reqs))
			}
			for _, r := range reqs {
				if got := r.Header.Get("Authorization"); got != "Basic "+fake.FortanixAPIKey {
					t.Errorf("%s %s: Authorization = %q", r.Method, r.Path, got)
				}
			}
			c := reqs[0]
			if c.Method != "PUT" || c.Path != "/crypto/v1/keys" || c.Header.Get("Content-Type") != "application/json" {
				t.Errorf("create = %s %s %q", c.Method, c.Path, c.Header.Get("Content-Type"))
			}
			want := map[string]any{
				"obj_type": "OPAQUE", "name": "my-key", "key_ops": []any{"EXPORT", "APPMANAGEABLE"},
				"value": base64.StdEncoding.EncodeToString(value), "enabled": true,
			}
			if group != "" {
				want["group_id"] = group
			}
			if fmt.Sprint(c.JSON) != fmt.Sprint(want) {
				t.Errorf("create body = %v\nwant %v", c.JSON, want)
			}
			for _, i := range []int{1, 2} {
				if r := reqs[i]; r.Method != "POST" || r.Path != "/crypto/v1/keys/export" || fmt.Sprint(r.JSON) != "map[name:my-key]" {
					t.Errorf("export = %s %s %v", r.Method, r.Path, r.JSON)
				}
			}
			if r := reqs[3]; r.Method != "DELETE" || !strings.HasPrefix(r.Path, "/crypto/v1/keys/") || len(r.Path) != len("/crypto/v1/keys/")+36 {
				t.Errorf("delete = %s %s, want DELETE /crypto/v1/keys/<kid>", r.Method, r.Path)
			}
		})
	}
}

// TestUpstreamFormat reads objects as upstream KES creates them (value =
// base64 of the stored record) and checks that what the store writes is
// exactly that.
func TestUpstreamFormat(t *testing.T) {
	f := fake.NewFortanix(t)
	s := connect(t, f, "")
	for _, name := range []string{"vec-created-1", "vec-imported-chacha20", "vec-legacy-v1-aes256"} {
		record := vectors.ReadFile(t, filepath.Join("keystore", name))
		f.Put(name, record, true)
		got, err := s.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, record) {
			t.Fatalf("Get(%s) = %q, %v; want the upstream record", name, got, err)
		}
		if err := s.Create(t.Context(), name, record); !errors.Is(err, keystore.ErrExists) {
			t.Fatalf("Create over upstream object: %v", err)
		}
		if err := s.Create(t.Context(), name+"-copy", record); err != nil {
			t.Fatal(err)
		}
		o, ok := f.Object(name + "-copy")
		if !ok || !bytes.Equal(o.Value, record) || o.ObjType != "OPAQUE" || !o.Enabled ||
			!slices.Equal(o.KeyOps, []string{"EXPORT", "APPMANAGEABLE"}) {
			t.Fatalf("written object = %+v, want upstream's layout", o)
		}
	}
	f.Put("disabled", []byte("x"), false)
	if _, err := s.Get(t.Context(), "disabled"); !errors.Is(err, fortanix.ErrDisabled) {
		t.Errorf("Get of a disabled object: %v, want ErrDisabled", err)
	}
}

// TestListPages lists more names than one DSM page and checks that each
// request starts where the last page ended.
func TestListPages(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) { testListPages(t, exclusive) })
	}
}

func testListPages(t *testing.T, exclusive bool) {
	f := fake.NewFortanix(t)
	s := connect(t, f, "")
	var all []string
	for i := range 250 {
		name := fmt.Sprintf("key-%03d", i)
		all = append(all, name)
		f.Put(name, []byte("v"), true)
	}
	f.Put("a-other", []byte("v"), true)
	f.Put("z-other", []byte("v"), true)
	f.ResetRequests()
	f.SetStartExclusive(exclusive)
	names, next, err := s.List(t.Context(), "key-", "", 0)
	if err != nil || !slices.Equal(names, all) || next != "" {
		t.Fatalf("List = %d names, next %q, %v; want all 250", len(names), next, err)
	}
	var starts []string
	for _, r := range f.Requests() {
		if r.Query.Get("sort") != "name:asc" || r.Query.Get("limit") != "100" {
			t.Errorf("list query = %v", r.Query)
		}
		starts = append(starts, r.Query.Get("start"))
	}
	// The first page starts just before the prefix ("key") and ends at
	// key-099. With an inclusive start the next repeats key-099 (dropped)
	// and ends at key-198; the third reaches z-other, past the prefix.
	want := []string{"key", "key-099", "key-198"}
	if exclusive { // pages of 100 new names each
		want = []string{"key", "key-099", "key-199"}
	}
	if !slices.Equal(starts, want) {
		t.Errorf("list starts = %q, want %q", starts, want)
	}
	names, next, err = s.List(t.Context(), "key-", "key-150", 60)
	if err != nil || !slices.Equal(names, all[150:210]) || next != "key-210" {
		t.Errorf("List(key-, key-150, 60) = %d names, next %q, %v", len(names), next, err)
	}
	names, _, err = s.List(t.Context(), "", "", 0)
	if err != nil || len(names) != 252 {
		t.Errorf("List all = %d names, %v; want 252", len(names), err)
	}
}

func TestFailures(t *testing.T) {
	ctx := t.Context()
	t.Run("throttled then ok", func(t *testing.T) {
		f := fake.NewFortanix(t)
		s := connect(t, f, "")
		f.Inject(fake.VendorFault{Path: "/crypto/v1/keys", Status: 429, Body: `{"message":"Too many requests"}`, RetryAfter: "0", Times: 2})
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("Create after 429s: %v", err)
		}
		f.Inject(fake.VendorFault{Path: "/crypto/v1/keys/export", Status: 429, Body: `{"message":"Too many requests"}`, Times: 2})
		if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Fatalf("Get after 429s: %q, %v", v, err)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		f := fake.NewFortanix(t)
		s := connect(t, f, "")
		f.Put("k", []byte("v"), true)
		f.Inject(fake.VendorFault{Path: "/crypto/v1/keys/export", Status: 500, Body: `{"message":"internal"}`, Times: 1})
		if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Fatalf("Get after a 500 (idempotent, retried): %q, %v", v, err)
		}
		// A create that failed with 500 may have been done: not retried.
		f.ResetRequests()
		f.Inject(fake.VendorFault{Method: "PUT", Path: "/crypto/v1/keys", Status: 500, Body: `{"message":"internal"}`})
		err := s.Create(ctx, "new", []byte("v"))
		var se *rest.StatusError
		if !errors.As(err, &se) || se.Status != 500 || len(f.Requests()) != 1 {
			t.Fatalf("Create with 500: %v after %d requests; want one request and an error", err, len(f.Requests()))
		}
		f.Inject(fake.VendorFault{Path: "/crypto/v1/keys/export", Status: 503, Body: `{"message":"unavailable"}`, Times: rest.DefaultAttempts})
		if _, err := s.Get(ctx, "k"); !keystore.IsUnreachable(err) {
			t.Fatalf("Get with persistent 503: %v, want unreachable", err)
		}
	})
	t.Run("revoked API key", func(t *testing.T) {
		f := fake.NewFortanix(t)
		s := connect(t, f, "")
		f.SetAPIKey("cm90YXRlZDprZXk=")
		_, err := s.Get(ctx, "k")
		if err == nil || errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || strings.Contains(err.Error(), fake.FortanixAPIKey) {
			t.Fatalf("Get with revoked key: %v", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		s := connect(t, fake.NewFortanix(t), "")
		if err := s.Delete(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Delete(missing): %v", err)
		}
	})
	t.Run("slower than deadline", func(t *testing.T) {
		f := fake.NewFortanix(t)
		s := connect(t, f, "")
		f.Inject(fake.VendorFault{Path: "/crypto/v1/keys/export", Stall: true})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := s.Get(ctx, "k")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("Get past the deadline: %v after %v", err, time.Since(start))
		}
	})
	t.Run("invalid names", func(t *testing.T) {
		f := fake.NewFortanix(t)
		s := connect(t, f, "")
		f.ResetRequests()
		for _, name := range []string{"", "a\x00b", "new\nline", "\xff", strings.Repeat("a", 4097)} {
			if err := s.Create(ctx, name, []byte("v")); err == nil {
				t.Errorf("Create(%q) succeeded", name)
			}
		}
		if n := len(f.Requests()); n != 0 {
			t.Errorf("%d requests sent for invalid names", n)
		}
	})
}

// TestBodiesClosed runs many calls, failed ones included, and checks that
// they share one connection: a response body left unread or unclosed
// would force a new connection for the next request.
func TestBodiesClosed(t *testing.T) {
	f := fake.NewFortanix(t)
	s := connect(t, f, "")
	ctx := t.Context()
	conns := f.Conns()
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
	f.Inject(fake.VendorFault{Path: "/crypto/v1/keys/export", Status: http.StatusTooManyRequests, Body: `{"message":"slow down"}`, Times: 3})
	if _, err := s.Get(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	if got := f.Conns() - conns; got > 1 {
		t.Errorf("%d new connections for sequential calls, want at most 1 (bodies not drained?)", got)
	}
}

func TestStatusUnreachable(t *testing.T) {
	f := fake.NewFortanix(t)
	s := connect(t, f, "")
	f.Inject(fake.VendorFault{Path: "/", Stall: true})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
		t.Errorf("Status of a stalled server: %v, want unreachable", err)
	}
}
