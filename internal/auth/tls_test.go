package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openkes/kes/internal/proxytest"
	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// readCerts parses every CERTIFICATE block of a PEM file of the vectors.
func readCerts(t *testing.T, name string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(vectors.Path(t, name))
	if err != nil {
		t.Fatalf("vectors missing: %v", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		t.Fatalf("%s: no certificates", name)
	}
	return certs
}

type identityVector struct {
	CertFile string       `json:"cert_file"`
	Identity kes.Identity `json:"identity"`
	Note     string       `json:"note"`
}

type apiKeyVector struct {
	APIKey   string       `json:"api_key"`
	Identity kes.Identity `json:"identity"`
	CertFile string       `json:"cert_file"`
}

func TestIdentifyTLSVectors(t *testing.T) {
	for _, v := range vectors.ReadJSONL[identityVector](t, "identities/identities.jsonl") {
		t.Run(filepath.Base(v.CertFile), func(t *testing.T) {
			// The client sends every certificate of the file (leaf + CA
			// for chain-leaf-ca.crt); only the leaf counts.
			certs := readCerts(t, v.CertFile)
			id, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: certs})
			if err != nil {
				t.Fatalf("IdentifyTLS: %v", err)
			}
			if id != v.Identity {
				t.Errorf("got %s, want %s", id, v.Identity)
			}
		})
	}
}

func TestChainLeafCA(t *testing.T) {
	certs := readCerts(t, "identities/chain-leaf-ca.crt")
	if len(certs) != 2 || certs[0].IsCA || !certs[1].IsCA {
		t.Fatalf("chain-leaf-ca.crt: want leaf then CA, got %d certificates", len(certs))
	}
	want := kes.IdentityOf(certs[0])
	id, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: certs})
	if err != nil || id != want {
		t.Errorf("leaf, CA: got (%s, %v), want %s", id, err, want)
	}
	// Upstream also accepts [CA, leaf] and takes the leaf. OpenKES refuses
	// it on purpose: the handshake proves possession of the first
	// certificate's key only, so taking the identity of a later one lets
	// anyone holding a victim's public certificate pose as the victim
	// (README, "differs from upstream"; TestCAFirstSpoofing in internal/api).
	if id, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{certs[1], certs[0]}}); !errors.Is(err, auth.ErrCAClientCert) || id != "" {
		t.Errorf("CA, leaf: got (%s, %v), want ErrCAClientCert", id, err)
	}
	if _, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: certs[1:]}); !errors.Is(err, auth.ErrCAClientCert) {
		t.Errorf("CA only: got %v, want ErrCAClientCert", err)
	}
}

// TestIdentifyTLSVerifiedChain: with a verified chain the identity is that
// of the chain's leaf, never of a root or intermediate.
func TestIdentifyTLSVerifiedChain(t *testing.T) {
	certs := readCerts(t, "identities/chain-leaf-ca.crt")
	state := &tls.ConnectionState{PeerCertificates: certs, VerifiedChains: [][]*x509.Certificate{{certs[0], certs[1]}}}
	if id, err := auth.IdentifyTLS(state); err != nil || id != kes.IdentityOf(certs[0]) {
		t.Errorf("got (%s, %v), want %s", id, err, kes.IdentityOf(certs[0]))
	}
}

func TestAPIKeyVectors(t *testing.T) {
	for i, v := range vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl") {
		t.Run(string(v.Identity[:8]), func(t *testing.T) {
			key, err := kes.ParseAPIKey(v.APIKey)
			if err != nil {
				t.Fatalf("ParseAPIKey(line %d): %v", i+1, err)
			}
			if got := key.Identity(); got != v.Identity {
				t.Errorf("APIKey.Identity: got %s, want %s", got, v.Identity)
			}
			cert, err := kes.GenerateCertificate(key, nil)
			if err != nil {
				t.Fatalf("GenerateCertificate: %v", err)
			}
			id, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}})
			if err != nil || id != v.Identity {
				t.Errorf("IdentifyTLS: got (%s, %v), want %s", id, err, v.Identity)
			}
			if v.CertFile != "" {
				id, err := auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: readCerts(t, v.CertFile)})
				if err != nil || id != v.Identity {
					t.Errorf("IdentifyTLS(%s): got (%s, %v), want %s", v.CertFile, id, err, v.Identity)
				}
			}
		})
	}
}

func TestIdentifyTLSErrors(t *testing.T) {
	leaf1, leaf2 := newCert(t, false), newCert(t, false)
	ca := newCert(t, true)
	tests := []struct {
		name  string
		state *tls.ConnectionState
		want  error
	}{
		{"no-tls", nil, kes.ErrInsecureConnection},
		{"no-certificate", &tls.ConnectionState{}, kes.ErrNoClientCert},
		// Upstream answers ErrNoClientCert for a CA alone and takes leaf1
		// for [ca, leaf1]; OpenKES refuses a CA-flagged first certificate
		// (see TestChainLeafCA for why).
		{"ca-only", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca}}, auth.ErrCAClientCert},
		{"ca-first", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca, leaf1}}, auth.ErrCAClientCert},
		{"nil-first", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{nil, leaf1}}, kes.ErrNoClientCert},
		{"two-leaves", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf1, leaf2}}, kes.ErrManyClientCerts},
		{"two-leaves-and-ca", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf1, ca, leaf2}}, kes.ErrManyClientCerts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := auth.IdentifyTLS(tt.state)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if id != "" {
				t.Errorf("got identity %q on error", id)
			}
		})
	}
}

func TestIdentifyTLSAllocs(t *testing.T) {
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{newCert(t, false), newCert(t, true)}}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := auth.IdentifyTLS(state); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 { // the hex string of the identity
		t.Errorf("IdentifyTLS allocates %v times, want ≤ 2", allocs)
	}
}

// newCert returns a new CA's certificate if isCA, else a client
// certificate it issued.
func newCert(t *testing.T, isCA bool) *x509.Certificate {
	t.Helper()
	ca := proxytest.NewCA(t)
	if isCA {
		return ca.Cert
	}
	return ca.Issue(t, "test", proxytest.ClientAuth).Leaf
}

// identifyCerts is IdentifyTLS for a client that sent certs.
func identifyCerts(certs []*x509.Certificate) (kes.Identity, error) {
	return auth.IdentifyTLS(&tls.ConnectionState{PeerCertificates: certs})
}

func TestIdentifyCertificate(t *testing.T) {
	leaf, ca := newCert(t, false), newCert(t, true)
	if id, err := auth.IdentifyCertificate(leaf); err != nil || id != kes.IdentityOf(leaf) {
		t.Errorf("leaf: (%s, %v)", id, err)
	}
	if _, err := auth.IdentifyCertificate(ca); !errors.Is(err, auth.ErrCAClientCert) {
		t.Errorf("CA: %v", err)
	}
	if _, err := auth.IdentifyCertificate(nil); !errors.Is(err, kes.ErrNoClientCert) {
		t.Errorf("nil: %v", err)
	}
}
