package api_test

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/vectors"
)

// newAPIKey returns the identity and client certificate of a fresh API key.
func newAPIKey(t testing.TB) (kes.Identity, *tls.Certificate) {
	t.Helper()
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kes.GenerateCertificate(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return key.Identity(), &cert
}

// TestEphemeralEscalation: a policy allowing /v1/policy/* and
// /v1/identity/* (on upstream HEAD those patterns reach only read routes;
// the write routes answer 404) gives no way to the ephemeral write, assign,
// delete and forget routes, over HTTP/1.1 and HTTP/2. On upstream servers
// that had these routes, the same policy could rewrite itself to allow "/*"
// and cut MinIO off; OpenKES opens them to the admin and to policies that
// name a route exactly, and never lets a non-admin change its own policy
// (README, "differs from upstream").
func TestEphemeralEscalation(t *testing.T) {
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			minioID, minioKey := newAPIKey(t)
			appID, appKey := newAPIKey(t)
			evilID, evilKey := newAPIKey(t) // another identity the attacker controls
			ts := startServer(t, serverOptions{policies: map[string]auth.PolicyConfig{
				"minio": {Allow: []string{"/v1/key/create/*", "/v1/key/generate/*", "/v1/key/decrypt/*"}, Identities: []kes.Identity{minioID}},
				"app":   {Allow: []string{"/v1/policy/*", "/v1/identity/*", "/v1/key/create/app-*"}, Identities: []kes.Identity{appID}},
			}})
			admin := ts.client(t, apiKeyCert(t, keys[0].APIKey), h2)
			minio := ts.client(t, minioKey, h2)
			app := ts.client(t, appKey, h2)
			evil := ts.client(t, evilKey, h2)
			if r := do(t, minio, "PUT", ts.URL+"/v1/key/create/minio-key", nil); r.Status != 200 {
				t.Fatalf("minio create: %d %s", r.Status, r.Body)
			}

			for _, req := range []struct{ method, path, body string }{
				{"POST", "/v1/policy/write/app", `{"allow":["/*"]}`},
				{"POST", "/v1/policy/write/evil", `{"allow":["/*"]}`},
				{"POST", "/v1/policy/write/minio", `{"allow":["/*"]}`},
				{"POST", "/v1/policy/assign/minio", `{"identity":"` + string(evilID) + `"}`},
				{"POST", "/v1/policy/assign/app", `{"identity":"` + string(evilID) + `"}`},
				{"POST", "/v1/identity/assign/minio/" + string(evilID), ""},
				{"POST", "/v1/identity/assign/app/" + string(appID), ""},
				{"DELETE", "/v1/identity/delete/" + string(minioID), ""},
				{"DELETE", "/v1/identity/forget/" + string(minioID), ""},
				{"DELETE", "/v1/policy/delete/minio", ""},
				{"DELETE", "/v1/policy/delete/app", ""},
				{"DELETE", "/v1/key/delete/minio-key", ""},
				{"PUT", "/v1/key/generate/minio-key", ""},
			} {
				r := do(t, app, req.method, ts.URL+req.path, strings.NewReader(req.body))
				if r.Status != 403 || errorMessage(t, r) != kes.ErrNotAllowed.Msg {
					t.Errorf("app %s %s: %d %s", req.method, req.path, r.Status, r.Body)
				}
			}

			// Nothing changed: MinIO works, the attacker's identity has no
			// rights, and the read routes the patterns were meant for work.
			if r := do(t, minio, "PUT", ts.URL+"/v1/key/generate/minio-key", nil); r.Status != 200 {
				t.Errorf("minio generate after the attack: %d %s", r.Status, r.Body)
			}
			if r := do(t, evil, "PUT", ts.URL+"/v1/key/generate/minio-key", nil); r.Status != 403 {
				t.Errorf("evil generate: %d %s", r.Status, r.Body)
			}
			r := do(t, app, "GET", ts.URL+"/v1/policy/read/app", nil)
			if r.Status != 200 || strings.Contains(string(r.Body), `"/*"`) {
				t.Errorf("app reads its policy: %d %s", r.Status, r.Body)
			}
			if r := do(t, app, "GET", ts.URL+"/v1/identity/describe/"+string(minioID), nil); r.Status != 200 || !strings.Contains(string(r.Body), `"minio"`) {
				t.Errorf("app describes minio: %d %s", r.Status, r.Body)
			}

			// The admin's flow is unchanged.
			if r := do(t, admin, "POST", ts.URL+"/v1/policy/write/tenant", strings.NewReader(`{"allow":["/v1/key/generate/minio-key"]}`)); r.Status != 200 {
				t.Fatalf("admin write: %d %s", r.Status, r.Body)
			}
			if r := do(t, admin, "POST", ts.URL+"/v1/policy/assign/tenant", strings.NewReader(`{"identity":"`+string(evilID)+`"}`)); r.Status != 200 {
				t.Fatalf("admin assign: %d %s", r.Status, r.Body)
			}
			if r := do(t, evil, "PUT", ts.URL+"/v1/key/generate/minio-key", nil); r.Status != 200 {
				t.Errorf("tenant generate: %d %s", r.Status, r.Body)
			}
			if r := do(t, admin, "DELETE", ts.URL+"/v1/identity/delete/"+string(evilID), nil); r.Status != 200 {
				t.Errorf("admin delete identity: %d %s", r.Status, r.Body)
			}
			if r := do(t, admin, "DELETE", ts.URL+"/v1/policy/delete/tenant", nil); r.Status != 200 {
				t.Errorf("admin delete policy: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestEphemeralDelegation: a configured policy that names a write route
// exactly may call it, but never on its own policy or assignment.
func TestEphemeralDelegation(t *testing.T) {
	opsID, opsKey := newAPIKey(t)
	tenantID, tenantKey := newAPIKey(t)
	ts := startServer(t, serverOptions{policies: map[string]auth.PolicyConfig{
		"ops": {Allow: []string{
			"/v1/policy/write/ops", "/v1/policy/write/tenant", "/v1/policy/assign/tenant",
			"/v1/identity/delete/" + string(opsID), "/v1/identity/forget/" + string(tenantID),
		}, Identities: []kes.Identity{opsID}},
	}})
	for _, h2 := range []bool{false, true} {
		ops := ts.client(t, opsKey, h2)
		tenant := ts.client(t, tenantKey, h2)
		for _, path := range []string{"/v1/policy/write/ops", "/v1/identity/delete/" + string(opsID)} {
			method, body := "POST", `{"allow":["/*"]}`
			if strings.Contains(path, "delete") {
				method, body = "DELETE", ""
			}
			r := do(t, ops, method, ts.URL+path, strings.NewReader(body))
			if r.Status != 403 || errorMessage(t, r) != auth.ErrSelfPolicy.Msg {
				t.Errorf("h2=%v: ops %s: %d %s", h2, path, r.Status, r.Body)
			}
		}
		if r := do(t, ops, "POST", ts.URL+"/v1/policy/write/tenant", strings.NewReader(`{"allow":["/v1/key/create/tenant-*"]}`)); r.Status != 200 {
			t.Fatalf("h2=%v: delegated write: %d %s", h2, r.Status, r.Body)
		}
		if r := do(t, ops, "POST", ts.URL+"/v1/policy/assign/tenant", strings.NewReader(`{"identity":"`+string(tenantID)+`"}`)); r.Status != 200 {
			t.Fatalf("h2=%v: delegated assign: %d %s", h2, r.Status, r.Body)
		}
		if r := do(t, tenant, "PUT", ts.URL+fmt.Sprintf("/v1/key/create/tenant-key-%v", h2), nil); r.Status != 200 {
			t.Errorf("h2=%v: tenant create: %d %s", h2, r.Status, r.Body)
		}
		if r := do(t, ops, "POST", ts.URL+"/v1/policy/assign/tenant", strings.NewReader(`{"identity":"`+string(opsID)+`"}`)); r.Status != 403 || errorMessage(t, r) != auth.ErrSelfAssign.Msg {
			t.Errorf("h2=%v: self-assign: %d %s", h2, r.Status, r.Body)
		}
		if r := do(t, ops, "DELETE", ts.URL+"/v1/identity/forget/"+string(tenantID), nil); r.Status != 200 {
			t.Errorf("h2=%v: delegated forget: %d %s", h2, r.Status, r.Body)
		}
		if r := do(t, tenant, "PUT", ts.URL+"/v1/key/create/tenant-key2", nil); r.Status != 403 {
			t.Errorf("h2=%v: tenant after forget: %d %s", h2, r.Status, r.Body)
		}
	}
}
