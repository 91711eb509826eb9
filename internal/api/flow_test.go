package api_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// TestMinIOFlow replays what MinIO does, as observed against upstream:
// generate on its default key and create it on 404, POST instead of PUT,
// generate without a body, chunked bodies without Content-Length over
// HTTP/1.1, decrypt, describe, HTTP/2 multiplexing, and /v1/key/list
// without the slash.
func TestMinIOFlow(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, serverOptions{})
			keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
			c := ts.client(t, apiKeyCert(t, keys[0].APIKey), h2)

			r := do(t, c, "POST", ts.URL+"/v1/key/generate/minio-default-key", strings.NewReader(`{}`))
			if r.Status != 404 || errorMessage(t, r) != "key does not exist" {
				t.Fatalf("generate on missing key: %d %s", r.Status, r.Body)
			}
			if r = do(t, c, "POST", ts.URL+"/v1/key/create/minio-default-key", nil); r.Status != 200 || len(r.Body) != 0 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			if r = do(t, c, "POST", ts.URL+"/v1/key/generate/minio-default-key", nil); r.Status != 200 {
				t.Fatalf("generate without body: %d %s", r.Status, r.Body)
			}
			ctx := base64.StdEncoding.EncodeToString([]byte(`{"bucket/object":"x"}`))
			req, _ := http.NewRequest("POST", ts.URL+"/v1/key/generate/minio-default-key", io.NopCloser(strings.NewReader(`{"context":"`+ctx+`"}`)))
			req.ContentLength = -1 // chunked
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var dek struct{ Plaintext, Ciphertext []byte }
			json.NewDecoder(resp.Body).Decode(&dek)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(dek.Plaintext) != 32 || len(dek.Ciphertext) != 76 {
				t.Fatalf("chunked generate: %d, %d/%d bytes", resp.StatusCode, len(dek.Plaintext), len(dek.Ciphertext))
			}

			// Many concurrent decrypts, multiplexed on one connection with h2.
			body, _ := json.Marshal(map[string][]byte{"ciphertext": dek.Ciphertext, "context": []byte(`{"bucket/object":"x"}`)})
			var wg sync.WaitGroup
			errs := make(chan string, 32)
			for range 32 {
				wg.Go(func() {
					r := do(t, c, "POST", ts.URL+"/v1/key/decrypt/minio-default-key", strings.NewReader(string(body)))
					var p struct{ Plaintext []byte }
					if r.Status != 200 || json.Unmarshal(r.Body, &p) != nil || string(p.Plaintext) != string(dek.Plaintext) {
						errs <- string(r.Body)
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatalf("decrypt: %s", e)
			}
			if r = do(t, c, "GET", ts.URL+"/v1/key/describe/minio-default-key", nil); r.Status != 200 {
				t.Fatalf("describe: %d %s", r.Status, r.Body)
			}
			if r = do(t, c, "GET", ts.URL+"/v1/key/list", nil); r.Status != 200 || !strings.Contains(string(r.Body), "minio-default-key") {
				t.Fatalf("list: %d %s", r.Status, r.Body)
			}
			if r = do(t, c, "PUT", ts.URL+"/v1/key/decrypt/minio-default-key", strings.NewReader(`{"ciphertext":"`+base64.StdEncoding.EncodeToString(dek.Ciphertext)+`"}`)); r.Status != 400 || errorMessage(t, r) != "decryption failed: ciphertext is not authentic" {
				t.Fatalf("decrypt without context: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestEphemeralPolicies: the admin writes a policy and assigns an identity
// at runtime; the identity can act; no identity assigns itself; a restart
// (a new server from the same config) forgets it all.
func TestEphemeralPolicies(t *testing.T) {
	opts := serverOptions{policies: map[string]auth.PolicyConfig{"probe": vectorsProbePolicy}}
	ts := startServer(t, opts)
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	admin := ts.client(t, apiKeyCert(t, keys[0].APIKey), false)
	appKey, _ := kes.GenerateAPIKey(nil)
	appCert, _ := kes.GenerateCertificate(appKey, nil)
	app := ts.client(t, &appCert, false)
	id := appKey.Identity().String()

	if r := do(t, app, "PUT", ts.URL+"/v1/key/create/app-key", nil); r.Status != 403 {
		t.Fatalf("before assignment: %d %s", r.Status, r.Body)
	}
	// The policy names the assign route exactly: a wildcard such as
	// "/v1/identity/assign/*" no longer grants it (TestEphemeralEscalation),
	// and the self-assignment must still be refused when it is granted.
	if r := do(t, admin, "POST", ts.URL+"/v1/policy/write/app", strings.NewReader(`{"allow":["/v1/key/create/app-*","/v1/key/generate/app-*","/v1/policy/write/*","/v1/identity/assign/app/`+id+`"]}`)); r.Status != 200 {
		t.Fatalf("write policy: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin, "POST", ts.URL+"/v1/identity/assign/app/"+id, nil); r.Status != 200 {
		t.Fatalf("assign: %d %s", r.Status, r.Body)
	}
	if r := do(t, app, "PUT", ts.URL+"/v1/key/create/app-key", nil); r.Status != 200 {
		t.Fatalf("after assignment: %d %s", r.Status, r.Body)
	}
	if r := do(t, app, "POST", ts.URL+"/v1/identity/assign/app/"+id, nil); r.Status != 403 || errorMessage(t, r) != "identity cannot assign policy to itself" {
		t.Fatalf("self-assignment: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin, "GET", ts.URL+"/v1/policy/read/app", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"/v1/key/create/app-*":{}`) {
		t.Fatalf("read policy: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin, "POST", ts.URL+"/v1/identity/assign/app/"+vectorsAdmin, nil); r.Status != 400 || errorMessage(t, r) != "identity is root" {
		t.Fatalf("assign admin: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin, "DELETE", ts.URL+"/v1/identity/forget/"+id, nil); r.Status != 200 {
		t.Fatalf("forget: %d %s", r.Status, r.Body)
	}
	if r := do(t, app, "PUT", ts.URL+"/v1/key/generate/app-key", nil); r.Status != 403 {
		t.Fatalf("after forget: %d %s", r.Status, r.Body)
	}

	// Restart on the same keystore: the config's policy is back, the
	// runtime one is gone.
	do(t, admin, "POST", ts.URL+"/v1/identity/assign/app/"+id, nil)
	opts.keystoreDir = ts.Dir
	ts2 := startServer(t, opts)
	admin2 := ts2.client(t, apiKeyCert(t, keys[0].APIKey), false)
	app2 := ts2.client(t, &appCert, false)
	if r := do(t, app2, "PUT", ts2.URL+"/v1/key/generate/app-key", nil); r.Status != 403 {
		t.Fatalf("after restart: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin2, "GET", ts2.URL+"/v1/policy/read/app", nil); r.Status != 404 {
		t.Fatalf("runtime policy after restart: %d %s", r.Status, r.Body)
	}
	if r := do(t, admin2, "GET", ts2.URL+"/v1/policy/read/probe", nil); r.Status != 200 {
		t.Fatalf("config policy after restart: %d %s", r.Status, r.Body)
	}
}

// TestLogStreams: /v1/log/audit and /v1/log/error really stream events
// produced after the subscription (upstream HEAD sends nothing).
func TestLogStreams(t *testing.T) {
	ts := startServer(t, serverOptions{})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	admin := ts.client(t, apiKeyCert(t, keys[0].APIKey), false)
	streamer := ts.client(t, apiKeyCert(t, keys[0].APIKey), false)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(path string) *bufio.Scanner {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
		resp, err := streamer.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return bufio.NewScanner(resp.Body)
	}
	audit := open("/v1/log/audit")
	errs := open("/v1/log/error")

	do(t, admin, "PUT", ts.URL+"/v1/key/create/streamed", nil)
	if !audit.Scan() {
		t.Fatalf("audit stream ended: %v", audit.Err())
	}
	var ev struct {
		Request  struct{ Path, Identity, IP string }
		Response struct{ Code int }
	}
	if err := json.Unmarshal(audit.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Request.Path != "/v1/key/create/streamed" || ev.Request.Identity != vectorsAdmin || ev.Response.Code != 200 || ev.Request.IP != "127.0.0.1" {
		t.Fatalf("audit event %s", audit.Bytes())
	}

	// An identity error is logged at DEBUG on the error log (level set to
	// DEBUG in startServer).
	do(t, ts.client(t, fileCert(t, "unassigned-ecdsa-p384"), false), "GET", ts.URL+"/v1/key/describe/x", nil)
	if !errs.Scan() {
		t.Fatalf("error stream ended: %v", errs.Err())
	}
	var msg struct{ Message string }
	if err := json.Unmarshal(errs.Bytes(), &msg); err != nil || !strings.Contains(msg.Message, "access denied") {
		t.Fatalf("error event %s", errs.Bytes())
	}
}

// TestMetrics: key routes are counted by status class, with upstream's
// metric names.
func TestMetrics(t *testing.T) {
	ts := startServer(t, serverOptions{})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	admin := ts.client(t, apiKeyCert(t, keys[0].APIKey), false)
	do(t, admin, "PUT", ts.URL+"/v1/key/create/m", nil)
	do(t, admin, "PUT", ts.URL+"/v1/key/create/m", nil)
	do(t, admin, "GET", ts.URL+"/v1/key/describe/none", nil)
	r := do(t, admin, "GET", ts.URL+"/v1/metrics", nil)
	if r.Status != 200 {
		t.Fatalf("metrics: %d %s", r.Status, r.Body)
	}
	for _, want := range []string{
		`kes_http_request_success{code="200"} 1`,
		`kes_http_request_error{code="400"} 1`,
		`kes_http_request_error{code="404"} 1`,
		`kes_http_response_time_count 3`,
		`kes_system_up_time`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %q:\n%s", want, r.Body)
		}
	}
}
