package rest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/rest"
)

// server answers the statuses in order, then 200.
func server(t *testing.T, statuses ...int) (*rest.Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(statuses[i])
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	c, err := rest.NewClient(srv.URL+"/base/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	t.Cleanup(c.Close)
	return c, &n
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name       string
		idempotent bool
		statuses   []int
		wantStatus int
		wantTries  int32
	}{
		{"throttled then ok", false, []int{429, 429}, 200, 3},
		{"unavailable then ok", false, []int{503}, 200, 2},
		{"500 not retried for a create", false, []int{500}, 500, 1},
		{"500 retried for a read", true, []int{500, 502}, 200, 3},
		{"gives up after 4 tries", true, []int{503, 503, 503, 503, 503}, 503, 4},
		{"404 not retried", true, []int{404}, 404, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, n := server(t, tt.statuses...)
			resp, err := c.Do(t.Context(), &rest.Request{Method: "POST", Path: "/x", Body: map[string]int{"a": 1}, Idempotent: tt.idempotent})
			if err != nil || resp.Status != tt.wantStatus || n.Load() != tt.wantTries {
				t.Fatalf("Do = %v, %v after %d tries; want status %d after %d", resp, err, n.Load(), tt.wantStatus, tt.wantTries)
			}
		})
	}
}

func TestRetryAfterPastDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	c, err := rest.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	resp, err := c.Do(ctx, &rest.Request{Method: "GET", Path: "/", Idempotent: true})
	if err != nil || resp.Status != 429 || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("Do = %v, %v after %v; want the 429 at once (the wait would pass the deadline)", resp, err, time.Since(start))
	}
}

func TestNetworkErrorUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	c, err := rest.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err = c.Do(t.Context(), &rest.Request{Method: "GET", Path: "/"})
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Do against a closed server: %v, want unreachable", err)
	}
}

func TestNewClientEndpoint(t *testing.T) {
	for _, e := range []string{"", "127.0.0.1:443", "ftp://host", "https://", "://x"} {
		if _, err := rest.NewClient(e, nil); err == nil {
			t.Errorf("NewClient(%q) succeeded", e)
		}
	}
}

func TestCheckPathName(t *testing.T) {
	for _, name := range []string{"my-key", "a.b", "with space", "ünïcode", "key_1"} {
		if err := rest.CheckPathName(name, 255); err != nil {
			t.Errorf("CheckPathName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "a?b", "a#b", "a%2Fb", "a;b", "a\x00", "a\nb", "\xff", string(make([]byte, 256))} {
		if err := rest.CheckPathName(name, 255); !errors.Is(err, rest.ErrInvalidName) {
			t.Errorf("CheckPathName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk"), 0o600)
	for _, p := range []string{filepath.Join(dir, "missing"), dir, filepath.Join(dir, "junk.pem")} {
		if _, err := rest.TLSConfig(p); err == nil {
			t.Errorf("TLSConfig(%s) succeeded", p)
		}
	}
	c, err := rest.TLSConfig("")
	if err != nil || c.RootCAs != nil || c.MinVersion < 0x0303 {
		t.Errorf("TLSConfig(\"\") = %+v, %v; want system roots, TLS 1.2+", c, err)
	}
}

// FuzzCheckPathName checks that every accepted name, escaped, stays one
// path segment that decodes back to the name.
func FuzzCheckPathName(f *testing.F) {
	for _, s := range []string{"my-key", "a b", "..", "a/b", "%2F", "ü", "a;b", "a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if rest.CheckPathName(name, 255) != nil {
			return
		}
		u, err := url.Parse("https://host/api/v1/vault/secrets/" + url.PathEscape(name) + "/export?type=name")
		if err != nil {
			t.Fatalf("escaped %q does not parse: %v", name, err)
		}
		if want := "/api/v1/vault/secrets/" + name + "/export"; u.Path != want || u.RawQuery != "type=name" {
			t.Fatalf("name %q: path %q query %q", name, u.Path, u.RawQuery)
		}
		if strings.Count(u.EscapedPath(), "/") != 6 {
			t.Fatalf("name %q spans segments: %q", name, u.EscapedPath())
		}
	})
}

func TestBodyTooLarge(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Write(make([]byte, rest.MaxBody+1))
	}))
	defer srv.Close()
	c, err := rest.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(t.Context(), &rest.Request{Method: "GET", Path: "/", Idempotent: true})
	if !errors.Is(err, rest.ErrBodyTooLarge) || n.Load() != 1 {
		t.Fatalf("Do = %v after %d tries; want ErrBodyTooLarge at once", err, n.Load())
	}
}
