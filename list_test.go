package kes_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes"
)

// pagedServer serves GET /v1/key/list/<prefix> from a sorted name list,
// at most pageSize names per page, treating the resource as a prefix as
// upstream does.
type pagedServer struct {
	names    []string
	pageSize int
	mu       sync.Mutex
	paths    []string
}

func (p *pagedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.URL.Path)
	p.mu.Unlock()
	prefix := strings.TrimPrefix(r.URL.Path, "/v1/key/list/")
	if prefix == "*" {
		prefix = ""
	}
	var resp kes.ListKeysResponse
	for _, n := range p.names {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		if len(resp.Names) == p.pageSize {
			resp.ContinueAt = n
			break
		}
		resp.Names = append(resp.Names, n)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func TestListKeysPaging(t *testing.T) {
	p := &pagedServer{names: []string{"a", "ab", "abc", "abd", "b"}, pageSize: 2}
	c, _ := newTestClient(t, newTLSServer(t, p))
	got, err := collect(c.ListKeys(t.Context(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	// Page 1 "a": [a ab] continue at abc; page 2 "abc": [abc]. The upstream
	// protocol cannot reach "abd": continue_at is used as a prefix.
	if want := []string{"a", "ab", "abc"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if want := []string{"/v1/key/list/a", "/v1/key/list/abc"}; !slices.Equal(p.paths, want) {
		t.Fatalf("requested %q, want %q", p.paths, want)
	}

	// Stop early: no further page is requested.
	p.paths = nil
	for n, err := range c.ListKeys(t.Context(), "*") {
		if err != nil || n != "a" {
			t.Fatalf("got %q, %v", n, err)
		}
		break
	}
	if want := []string{"/v1/key/list/*"}; !slices.Equal(p.paths, want) {
		t.Fatalf("requested %q, want %q", p.paths, want)
	}
}

func TestListLegacyNDJSON(t *testing.T) {
	h := &recorder{contentType: "application/x-ndjson", body: "{\"Name\":\"k1\"}\n{\"name\":\"k2\",\"created_at\":\"2022-01-01T00:00:00Z\"}\n"}
	c, _ := newTestClient(t, newTLSServer(t, h))
	got, err := collect(c.ListKeys(t.Context(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1", "k2"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	h = &recorder{contentType: "application/x-ndjson", body: "{\"identity\":\"" + string(testIdentity) + "\",\"policy\":\"p\"}\n"}
	c, _ = newTestClient(t, newTLSServer(t, h))
	ids, err := collect(c.ListIdentities(t.Context(), ""))
	if err != nil || !slices.Equal(ids, []kes.Identity{testIdentity}) {
		t.Fatalf("got %q, %v", ids, err)
	}

	h = &recorder{contentType: "application/x-ndjson", body: "{\"name\":\"k1\"}\n{\"error\":\"failed to list keys\"}\n"}
	c, _ = newTestClient(t, newTLSServer(t, h))
	if _, err := collect(c.ListKeys(t.Context(), "")); !errors.Is(err, kes.NewError(500, "failed to list keys")) {
		t.Fatalf("got %v, want the error line", err)
	}
}

func TestListError(t *testing.T) {
	h := &recorder{status: 403, contentType: "application/json", body: `{"message":"not authorized: insufficient permissions"}`}
	c, _ := newTestClient(t, newTLSServer(t, h))
	names, err := collect(c.ListPolicies(t.Context(), ""))
	if !errors.Is(err, kes.ErrNotAllowed) || len(names) != 0 {
		t.Fatalf("got %q, %v; want ErrNotAllowed", names, err)
	}
}
