package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes/internal/auth"
)

// spoofCert returns what an attacker who holds only the victim's public
// certificate sends: a self-signed CA:TRUE certificate of a key of its own
// first, then the victim's certificate. The handshake proves possession of
// the first certificate's key only.
func spoofCert(t testing.TB, victim *x509.Certificate) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "attacker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, victim.Raw}, PrivateKey: key}
}

// TestCAFirstSpoofing: a client that sends [own CA:TRUE certificate,
// victim's certificate] is refused, over HTTP/1.1 and HTTP/2, whether the
// victim is the admin or an identity with a policy. Upstream KES drops the
// CA certificate and takes the client for the victim; OpenKES takes the
// identity from the first certificate only and refuses a CA there, because
// nothing else proves who the client is (README, "differs from upstream").
func TestCAFirstSpoofing(t *testing.T) {
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	adminCert := apiKeyCert(t, keys[0].APIKey).Leaf
	policyCert := fileCert(t, "ecdsa-p256") // in vectorsProbePolicy
	policyLeaf, err := x509.ParseCertificate(policyCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, serverOptions{policies: map[string]auth.PolicyConfig{"probe": vectorsProbePolicy}})
			admin := ts.client(t, apiKeyCert(t, keys[0].APIKey), h2)
			if r := do(t, admin, "PUT", ts.URL+"/v1/key/create/victim-key", nil); r.Status != 200 {
				t.Fatalf("admin create: %d %s", r.Status, r.Body)
			}

			fake := ts.client(t, spoofCert(t, adminCert), h2)
			r := do(t, fake, "GET", ts.URL+"/v1/identity/self/describe", nil)
			if r.Status == 200 || strings.Contains(string(r.Body), `"admin":true`) {
				t.Fatalf("spoofed admin self-describe: %d %s", r.Status, r.Body)
			}
			for _, req := range []struct{ method, path string }{
				{"GET", "/v1/key/list/*"},
				{"PUT", "/v1/key/create/spoofed"},
				{"PUT", "/v1/key/generate/victim-key"},
				{"GET", "/v1/identity/describe/" + vectorsAdmin},
				{"POST", "/v1/policy/write/evil"},
			} {
				r := do(t, fake, req.method, ts.URL+req.path, nil)
				if r.Status != 400 || errorMessage(t, r) != auth.ErrCAClientCert.Msg {
					t.Errorf("spoofed admin %s %s: %d %s", req.method, req.path, r.Status, r.Body)
				}
			}

			fake = ts.client(t, spoofCert(t, policyLeaf), h2)
			r = do(t, fake, "GET", ts.URL+"/v1/identity/self/describe", nil)
			if r.Status == 200 || strings.Contains(string(r.Body), "probe") {
				t.Fatalf("spoofed policy self-describe: %d %s", r.Status, r.Body)
			}
			r = do(t, fake, "PUT", ts.URL+"/v1/key/create/vec-probe-spoofed", nil)
			if r.Status != 400 || errorMessage(t, r) != auth.ErrCAClientCert.Msg {
				t.Errorf("spoofed policy identity create: %d %s", r.Status, r.Body)
			}

			// The real owners keep working, and nothing was created.
			real := ts.client(t, policyCert, h2)
			if r := do(t, real, "PUT", ts.URL+"/v1/key/create/vec-probe-real", nil); r.Status != 200 {
				t.Errorf("policy identity create: %d %s", r.Status, r.Body)
			}
			r = do(t, admin, "GET", ts.URL+"/v1/key/list/*", nil)
			if r.Status != 200 || strings.Contains(string(r.Body), "spoofed") {
				t.Errorf("list after attack: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestChainLeafIntermediate: a client sending the usual [leaf, CA] chain
// keeps its identity, with and without verification of the chain, on both
// protocols.
func TestChainLeafIntermediate(t *testing.T) {
	chain := fileCert(t, "chain-leaf-ca")
	if len(chain.Certificate) != 2 {
		t.Fatalf("chain-leaf-ca: %d certificates", len(chain.Certificate))
	}
	caFile := vectors.Path(t, "identities/chain-leaf-ca.crt") // leaf + CA; the CA is the root
	for _, verify := range []bool{false, true} {
		for _, h2 := range []bool{false, true} {
			opts := serverOptions{policies: map[string]auth.PolicyConfig{"probe": vectorsProbePolicy}, verify: verify}
			if verify {
				opts.caPath = caFile
			}
			ts := startServer(t, opts)
			c := ts.client(t, chain, h2)
			r := do(t, c, "GET", ts.URL+"/v1/identity/self/describe", nil)
			if r.Status != 200 || !strings.Contains(string(r.Body), "e209bb13b678c4a7463ec389bf039714bc778efe09d54ef1d259ae6045448527") {
				t.Errorf("verify=%v h2=%v: self-describe: %d %s", verify, h2, r.Status, r.Body)
			}
			if r := do(t, c, "PUT", ts.URL+"/v1/key/create/vec-probe-chain", nil); r.Status != 200 {
				t.Errorf("verify=%v h2=%v: create: %d %s", verify, h2, r.Status, r.Body)
			}
		}
	}
}

// TestCAFirstVerified: with tls.auth on, the attacker's self-signed CA is
// no trusted root, so the handshake itself fails.
func TestCAFirstVerified(t *testing.T) {
	caFile := vectors.Path(t, "identities/chain-leaf-ca.crt")
	chain := fileCert(t, "chain-leaf-ca")
	leaf, err := x509.ParseCertificate(chain.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOptions{policies: map[string]auth.PolicyConfig{"probe": vectorsProbePolicy}, verify: true, caPath: caFile})
	fake := ts.client(t, spoofCert(t, leaf), false)
	if _, err := fake.Get(ts.URL + "/v1/identity/self/describe"); err == nil {
		t.Fatal("handshake with an untrusted CA-first chain succeeded")
	}
}
