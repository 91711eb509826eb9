package api_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
)

// TestBadInput sends invalid requests: each gets upstream's status and
// message, and nothing in the keystore directory changes.
func TestBadInput(t *testing.T) {
	ts := vectorServer(t)
	clients := ts.vectorClients(t, false)
	admin := clients["admin"]
	before := snapshotDir(t, ts.Dir)

	big := `{"plaintext":"` + strings.Repeat("A", 1_000_000) + `"}`
	tests := []struct {
		name, method, path, body string
		identity                 string
		status                   int
		msg                      string
	}{
		{"oversized encrypt body", "PUT", "/v1/key/encrypt/vec-created-1", big, "admin", 400, "invalid request body"},
		{"oversized import body", "PUT", "/v1/key/import/vec-new", `{"key":"` + strings.Repeat("A", 1_000_000) + `"}`, "admin", 400, "invalid import key request body"},
		{"bad JSON", "PUT", "/v1/key/decrypt/vec-created-1", `{"ciphertext":`, "admin", 400, "invalid request body"},
		{"JSON array", "PUT", "/v1/key/encrypt/vec-created-1", `["x"]`, "admin", 400, "invalid request body"},
		{"bad base64", "PUT", "/v1/key/encrypt/vec-created-1", `{"plaintext":"!!!"}`, "admin", 400, "invalid request body"},
		{"unpadded base64", "PUT", "/v1/key/decrypt/vec-created-1", `{"ciphertext":"AAEC"+"AwQ"}`, "admin", 400, "invalid request body"},
		{"chunked empty generate body", "PUT", "/v1/key/generate/vec-created-1", "", "admin", 400, "invalid request body"},
		{"name ../x", "PUT", "/v1/key/create/..%2Fx", "", "admin", 400, "key name '../x' is empty, too long or contains invalid characters"},
		{"name a/b", "PUT", "/v1/key/create/a%2Fb", "", "admin", 400, "key name 'a/b' is empty, too long or contains invalid characters"},
		{"name with dot", "PUT", "/v1/key/create/a.b", "", "admin", 400, "key name 'a.b' is empty, too long or contains invalid characters"},
		{"name with NUL", "PUT", "/v1/key/create/a%00b", "", "admin", 400, "key name 'a\x00b' is empty, too long or contains invalid characters"},
		{"empty name", "PUT", "/v1/key/create/", "", "admin", 400, "key name '' is empty, too long or contains invalid characters"},
		{"81 chars", "PUT", "/v1/key/create/" + strings.Repeat("k", 81), "", "admin", 400, "key name '" + strings.Repeat("k", 81) + "' is empty, too long or contains invalid characters"},
		{"import ../x", "PUT", "/v1/key/import/..%2Fx", `{"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","cipher":"AES256"}`, "admin", 400, "key name '../x' is empty, too long or contains invalid characters"},
		{"delete a/b", "DELETE", "/v1/key/delete/a%2Fb", "", "admin", 400, "key name 'a/b' is empty, too long or contains invalid characters"},
		{"invalid list pattern", "GET", "/v1/key/list/a*b", "", "admin", 400, "listing pattern 'a*b' is empty, too long or is invalid"},
		{"invalid policy name", "GET", "/v1/policy/read/a.b", "", "admin", 400, "policy name 'a.b' is empty, too long or contains invalid characters"},
		{"wrong method", "GET", "/v1/key/create/vec-x", "", "admin", 405, "received method 'GET' expected 'PUT'"},
		{"wrong method DELETE", "DELETE", "/v1/key/generate/vec-x", "", "admin", 405, "received method 'DELETE' expected 'PUT'"},
		{"identity without policy", "PUT", "/v1/key/create/vec-x", "", "unassigned-ecdsa-p384", 403, "not authorized: insufficient permissions"},
		{"unauthorized before invalid name", "PUT", "/v1/key/create/a.b", "", "unassigned-ecdsa-p384", 403, "not authorized: insufficient permissions"},
		{"policy denies", "PUT", "/v1/key/create/vec-probe-denied-x", "", "ecdsa-p256", 403, "not authorized: insufficient permissions"},
		{"decrypt unknown key", "PUT", "/v1/key/decrypt/vec-none", `{"ciphertext":""}`, "admin", 404, "key does not exist"},
		{"decrypt garbage", "PUT", "/v1/key/decrypt/vec-created-1", `{"ciphertext":"AAAA"}`, "admin", 400, "decryption failed: ciphertext is not authentic"},
		{"create existing", "POST", "/v1/key/create/vec-created-1", "", "admin", 400, "key already exists"},
		{"hmac on legacy key", "PUT", "/v1/key/hmac/vec-legacy-v1-aes256", `{"message":"aGk="}`, "admin", 409, "key does not support HMAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "chunked empty generate body" {
				req.Body = io.NopCloser(strings.NewReader(""))
				req.ContentLength = -1
				req.TransferEncoding = []string{"chunked"}
			}
			resp, err := clients[tt.identity].Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
			if r.Status != tt.status || errorMessage(t, r) != tt.msg {
				t.Fatalf("got %d %q, want %d %q", r.Status, b, tt.status, tt.msg)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}

	t.Run("unknown route", func(t *testing.T) {
		r := do(t, admin, "GET", ts.URL+"/v1/key/unknown", nil)
		if r.Status != 404 || string(r.Body) != "404 page not found\n" {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, err := ts.client(t, nil, false).Get(ts.URL + "/v1/status")
		if err == nil {
			t.Fatal("TLS handshake without client certificate succeeded")
		}
	})
	if after := snapshotDir(t, ts.Dir); !equalMaps(before, after) {
		t.Fatalf("bad input changed the keystore directory:\nbefore %v\nafter %v", keysOf(before), keysOf(after))
	}
}

func keysOf(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

// TestSkipAuth: with a public route, certificates are only requested, and
// authenticated routes answer 400 without one (identity-and-auth.md §3).
func TestSkipAuth(t *testing.T) {
	ts := startServer(t, serverOptions{
		keystoreDir: filepath.Join(vectors.Dir(t), "keystore"),
		routes:      map[string]api.RouteConfig{"/v1/ready": {SkipAuth: true}, "/v1/status": {SkipAuth: true}},
	})
	anon := ts.client(t, nil, false)
	if r := do(t, anon, "GET", ts.URL+"/v1/ready", nil); r.Status != 200 {
		t.Fatalf("ready: %d %s", r.Status, r.Body)
	}
	if r := do(t, anon, "GET", ts.URL+"/v1/status", nil); r.Status != 200 {
		t.Fatalf("status: %d %s", r.Status, r.Body)
	}
	r := do(t, anon, "GET", ts.URL+"/v1/key/describe/vec-created-1", nil)
	if r.Status != 400 || errorMessage(t, r) != "tls: client certificate is required" {
		t.Fatalf("describe without certificate: %d %s", r.Status, r.Body)
	}
	// A certificate that has no policy still cannot use private routes.
	other := ts.client(t, fileCert(t, "unassigned-ecdsa-p384"), false)
	if r := do(t, other, "GET", ts.URL+"/v1/key/describe/vec-created-1", nil); r.Status != 403 {
		t.Fatalf("describe by unassigned identity: %d %s", r.Status, r.Body)
	}
}

// TestVerifiedClients: with tls.auth on, self-signed API-key certificates
// are refused in the handshake, certificates of the configured CA pass.
func TestVerifiedClients(t *testing.T) {
	ts := startServer(t, serverOptions{
		keystoreDir: filepath.Join(vectors.Dir(t), "keystore"),
		verify:      true,
		caPath:      filepath.Join(vectors.Dir(t), "identities", "chain-leaf-ca.crt"),
		policies:    map[string]auth.PolicyConfig{"probe": vectorsProbePolicy},
	})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	_, err := ts.client(t, apiKeyCert(t, keys[0].APIKey), false).Get(ts.URL + "/v1/status")
	var certErr *tls.CertificateVerificationError
	if err == nil || errors.As(err, &certErr) {
		t.Fatalf("self-signed client certificate accepted with tls.auth on: %v", err)
	}
	// The leaf of chain-leaf-ca.crt is issued by the CA in the same file
	// and is in policy probe: it passes verification and authorization.
	leaf := ts.client(t, fileCert(t, "chain-leaf-ca"), false)
	if r := do(t, leaf, "GET", ts.URL+"/v1/key/describe/vec-probe-none", nil); r.Status != 404 {
		t.Fatalf("verified client: %d %s, want 404 key does not exist", r.Status, r.Body)
	}
}
