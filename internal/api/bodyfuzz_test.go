package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http/httptest"
	"slices"
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

// bodyRoutes are the routes whose handlers read a request body, with the
// statuses each may answer to any body sent by the admin.
var bodyRoutes = []struct {
	path   string
	status []int
}{
	{"/v1/key/import/fuzz-import", []int{200, 400, 406, 409}},
	{"/v1/key/generate/fuzz", []int{200, 400}},
	{"/v1/key/encrypt/fuzz", []int{200, 400}},
	{"/v1/key/decrypt/fuzz", []int{200, 400}},
	{"/v1/key/hmac/fuzz", []int{200, 400}},
	{"/v1/policy/write/fuzz-policy", []int{200, 400}},
	{"/v1/policy/assign/fuzz-policy", []int{200, 400, 403, 404}},
}

// bodyFuzzer is an in-process server with one key, "fuzz", called by the
// admin without a network.
type bodyFuzzer struct {
	srv    *Server
	keys   *cache.Cache[crypto.Key]
	key    crypto.Key
	errors bytes.Buffer // the error log; written by the handlers only
	tls    *tls.ConnectionState
	ctx    context.Context
}

func newBodyFuzzer(f *testing.F) *bodyFuzzer {
	f.Helper()
	apiKey, err := kes.GenerateAPIKey(nil)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := kes.GenerateCertificate(apiKey, nil)
	if err != nil {
		f.Fatal(err)
	}
	start := time.Now()
	bf := &bodyFuzzer{tls: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}}
	bf.keys = cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	f.Cleanup(func() { bf.keys.Close() })
	authorizer, err := auth.New(apiKey.Identity(), nil, start)
	if err != nil {
		f.Fatal(err)
	}
	m := metrics.New(start)
	bf.srv, err = New(&Config{
		Keys: bf.keys, Auth: authorizer,
		ErrorLog: log.NewErrorLog(&bf.errors, nil, m.ErrorEvent), AuditLog: log.NewAuditLog(io.Discard, nil, m.AuditEvent),
		Metrics: m,
	})
	if err != nil {
		f.Fatal(err)
	}
	client, server := net.Pipe()
	f.Cleanup(func() { client.Close(); server.Close() })
	bf.ctx = ConnContext(context.Background(), server)
	if rec := bf.send("PUT", "/v1/key/create/fuzz", nil); rec.Code != 200 {
		f.Fatal(rec.Body.String())
	}
	if bf.key, err = bf.keys.Get(context.Background(), "fuzz"); err != nil {
		f.Fatal(err)
	}
	return bf
}

func (bf *bodyFuzzer) send(method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(bf.ctx, method, path, bytes.NewReader(body))
	req.TLS = bf.tls
	rec := httptest.NewRecorder()
	bf.srv.ServeHTTP(rec, req)
	return rec
}

// FuzzRequestBodies sends arbitrary bodies to every route that reads one
// and checks that the handler does not panic, answers one of the route's
// statuses with a well-formed, bounded JSON body, and that whatever it
// accepted round-trips: an encrypt or generate result decrypts to the
// plaintext, a decrypt or HMAC result is that of the key, an imported key
// is stored as sent, a written policy reads back as written. The request
// is decoded for the check as upstream decodes it (json.Decoder), so the
// check also holds the server's faster decoders to upstream's.
func FuzzRequestBodies(f *testing.F) {
	bf := newBodyFuzzer(f)
	ct, err := bf.key.Secret.Encrypt([]byte("plaintext"), []byte("ctx"))
	if err != nil {
		f.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	for i, body := range []string{
		`{"key":"` + b64(make([]byte, 32)) + `","cipher":"AES256"}`,
		`{"context":"` + b64([]byte("ctx")) + `"}`,
		`{"plaintext":"aGVsbG8=","context":null}`,
		`{"ciphertext":"` + b64(ct) + `","context":"` + b64([]byte("ctx")) + `"}`,
		`{"message":"aGVsbG8="}`,
		`{"allow":["/v1/key/*"],"deny":["/v1/key/delete/*"],"paths":["/v1/status"]}`,
		`{"identity":"2bd948d5849994c576282da8e8c435d443ca160e3e8ed9895c84004e743abae3"}`,
	} {
		f.Add(uint8(i), []byte(body))
	}
	f.Add(uint8(0), []byte(`{"key":"`+b64(make([]byte, 31))+`","cipher":"ChaCha20"}`))
	f.Add(uint8(3), []byte(`{"ciphertext":"AAEC"}trailing`))
	f.Add(uint8(5), []byte(`{"allow":null,"deny":[""]}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := bodyRoutes[int(which)%len(bodyRoutes)]
		bf.errors.Reset()
		rec := bf.send("POST", rt.path, body)
		if !slices.Contains(rt.status, rec.Code) {
			t.Fatalf("%s %q: status %d, want one of %v; body %q", rt.path, body, rec.Code, rt.status, rec.Body)
		}
		out := rec.Body.Bytes()
		if len(out) > 2*maxBody {
			t.Fatalf("%s: response of %d bytes", rt.path, len(out))
		}
		if len(out) > 0 && !json.Valid(out) {
			t.Fatalf("%s %q: response is not JSON: %q", rt.path, body, out)
		}
		if rec.Code != 200 {
			var e struct{ Message string }
			if json.Unmarshal(out, &e) != nil || e.Message == "" {
				t.Fatalf("%s %q: error body %q has no message", rt.path, body, out)
			}
			return
		}
		bf.checkAccepted(t, rt.path, body, out)
	})
}

// checkAccepted checks the answer out of a request that was accepted.
func (bf *bodyFuzzer) checkAccepted(t *testing.T, path string, body, out []byte) {
	t.Helper()
	decode := func(v any) {
		t.Helper()
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
			t.Fatalf("%s accepted %q, which json.Decoder refuses: %v", path, body, err)
		}
	}
	var resp struct{ Plaintext, Ciphertext, HMAC []byte }
	if len(out) > 0 {
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("%s: response %q: %v", path, out, err)
		}
	}
	secret := bf.key.Secret
	switch path {
	case "/v1/key/import/fuzz-import":
		var req kes.ImportKeyRequest
		decode(&req)
		bf.checkImport(t, req)
	case "/v1/key/generate/fuzz":
		var req kes.GenerateKeyRequest
		if len(body) > 0 {
			decode(&req)
		}
		if pt, err := secret.Decrypt(resp.Ciphertext, req.Context); err != nil || len(pt) != 32 || !bytes.Equal(pt, resp.Plaintext) {
			t.Fatalf("generate %q: the data key does not decrypt to its plaintext (%v)", body, err)
		}
	case "/v1/key/encrypt/fuzz":
		var req kes.EncryptKeyRequest
		decode(&req)
		if pt, err := secret.Decrypt(resp.Ciphertext, req.Context); err != nil || !bytes.Equal(pt, req.Plaintext) {
			t.Fatalf("encrypt %q: the ciphertext does not decrypt to the plaintext (%v)", body, err)
		}
	case "/v1/key/decrypt/fuzz":
		var req kes.DecryptKeyRequest
		decode(&req)
		if pt, err := secret.Decrypt(req.Ciphertext, req.Context); err != nil || !bytes.Equal(pt, resp.Plaintext) {
			t.Fatalf("decrypt %q: answered %x, the key gives %x (%v)", body, resp.Plaintext, pt, err)
		}
	case "/v1/key/hmac/fuzz":
		var req kes.HMACRequest
		decode(&req)
		if want := bf.key.HMAC.Sum(req.Message); !bytes.Equal(resp.HMAC, want) {
			t.Fatalf("hmac %q: answered %x, want %x", body, resp.HMAC, want)
		}
	case "/v1/policy/write/fuzz-policy":
		var req writePolicyRequest
		decode(&req)
		bf.checkPolicy(t, req)
	}
}

func (bf *bodyFuzzer) checkImport(t *testing.T, req kes.ImportKeyRequest) {
	t.Helper()
	typ, err := crypto.ParseCipher(req.Cipher)
	if err != nil {
		t.Fatalf("import accepted cipher %q: %v", req.Cipher, err)
	}
	want, err := crypto.NewSecretKey(typ, req.Key)
	if err != nil {
		t.Fatalf("import accepted key of %d bytes: %v", len(req.Key), err)
	}
	got, err := bf.keys.Get(context.Background(), "fuzz-import")
	if err != nil {
		t.Fatalf("imported key: %v", err)
	}
	if !got.Secret.Equal(want) {
		t.Fatalf("imported key is stored as %v, want %v", got.Secret, want)
	}
	// Secrets hygiene: the imported key bytes reach no log line.
	for _, enc := range []string{hex.EncodeToString(req.Key), base64.StdEncoding.EncodeToString(req.Key)} {
		if bytes.Contains(bf.errors.Bytes(), []byte(enc)) {
			t.Fatalf("the error log holds the imported key: %q", bf.errors.String())
		}
	}
	if rec := bf.send("DELETE", "/v1/key/delete/fuzz-import", nil); rec.Code != 200 {
		t.Fatalf("delete imported key: %d %s", rec.Code, rec.Body)
	}
}

func (bf *bodyFuzzer) checkPolicy(t *testing.T, req writePolicyRequest) {
	t.Helper()
	rec := bf.send("GET", "/v1/policy/read/fuzz-policy", nil)
	if rec.Code != 200 {
		t.Fatalf("read written policy: %d %s", rec.Code, rec.Body)
	}
	var got kes.GetPolicyResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("read written policy: %v", err)
	}
	set := func(patterns ...[]string) []string {
		m := map[string]bool{}
		for _, ps := range patterns {
			for _, p := range ps {
				m[p] = true
			}
		}
		return slices.Sorted(maps.Keys(m))
	}
	if a, b := set(slices.Collect(maps.Keys(got.Allow))), set(req.Allow, req.Paths); !slices.Equal(a, b) {
		t.Fatalf("policy allow reads back as %q, written %q", a, b)
	}
	if a, b := set(slices.Collect(maps.Keys(got.Deny))), set(req.Deny); !slices.Equal(a, b) {
		t.Fatalf("policy deny reads back as %q, written %q", a, b)
	}
}
