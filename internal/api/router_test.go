package api

import (
	"io"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
)

// TestFastRouter: wherever the map lookup answers, it picks the handler
// the ServeMux would pick; everything else is left to the mux.
func TestFastRouter(t *testing.T) {
	authorizer, _ := auth.New(kes.Identity("admin"), nil, time.Now())
	s, err := New(&Config{
		Keys:     cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{}),
		Auth:     authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, nil, nil), AuditLog: log.NewAuditLog(io.Discard, nil, nil),
		Metrics: metrics.New(time.Now()),
	})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/version", "/v1/status", "/v1/ready", "/v1/metrics", "/v1/api", "/v1/log/audit", "/v1/log/error",
		"/v1/key/create/k", "/v1/key/create/", "/v1/key/create", "/v1/key/create/a/b", "/v1/key/list",
		"/v1/key/list/", "/v1/key/list/*", "/v1/policy/list", "/v1/identity/list", "/v1/identity/self/describe",
		"/v1/identity/self/describe/x", "/v1/identity/assign/p/id", "/v1/key/unknown", "/v1/key/unknown/x",
		"/", "", "/v1", "/v1/", "/v1/key", "/v1/key/", "/v2/key/create/x", "/version/", "/v1/status/x",
		"/v1/key//create/x", "/v1/key/create/../x", "/v1/key/./create/x", "/v1/key/create/.x", "/v1/key/create/x/..",
	}
	st := s.state.Load()
	for _, p := range paths {
		fast := st.route(p)
		if fast == nil {
			continue // the mux answers
		}
		req := httptest.NewRequest("GET", "https://localhost/", nil)
		req.URL.Path = p
		h, pattern := st.mux.Handler(req)
		if pattern == "" || reflect.ValueOf(h).Pointer() != reflect.ValueOf(fast).Pointer() {
			t.Errorf("%q: fast path and mux (pattern %q) disagree", p, pattern)
		}
	}
	if st.route("/v1/key/decrypt/k") == nil || st.route("/v1/key/list") == nil {
		t.Fatal("fast path does not serve the hot routes")
	}
}

// TestUpstreamRoutesNotExtensions: the routes of spec api.md §3 and §5
// are listed in /v1/api exactly as upstream lists them, without the
// OpenKES extension mark, which only routes upstream lacks carry.
func TestUpstreamRoutesNotExtensions(t *testing.T) {
	upstream := map[string]bool{
		"/version": true, "/v1/ready": true, "/v1/status": true, "/v1/metrics": true, "/v1/api": true,
		"/v1/key/create/": true, "/v1/key/import/": true, "/v1/key/describe/": true, "/v1/key/list/": true,
		"/v1/key/delete/": true, "/v1/key/generate/": true, "/v1/key/encrypt/": true, "/v1/key/decrypt/": true,
		"/v1/key/hmac/": true, "/v1/policy/describe/": true, "/v1/policy/read/": true, "/v1/policy/list/": true,
		"/v1/policy/write/": true, "/v1/policy/delete/": true, "/v1/policy/assign/": true,
		"/v1/identity/describe/": true, "/v1/identity/self/describe": true, "/v1/identity/list/": true,
		"/v1/identity/assign/": true, "/v1/identity/forget/": true, "/v1/identity/delete/": true,
		"/v1/log/error": true, "/v1/log/audit": true,
	}
	for _, rt := range routes() {
		if upstream[rt.Method+" "+rt.Path] || upstream[rt.Path] {
			if rt.Ext {
				t.Errorf("%s %s is upstream's route but marked as an OpenKES extension", rt.Method, rt.Path)
			}
		} else if !rt.Ext {
			t.Errorf("%s %s is not upstream's route: mark it Ext (an OpenKES extension)", rt.Method, rt.Path)
		}
	}
}
