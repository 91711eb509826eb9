package kes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// certFiles writes a self-signed ECDSA client certificate and its key to a
// temporary directory. If password is not nil the key is written as a
// legacy encrypted PEM block.
func certFiles(t testing.TB, password []byte) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	block := &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}
	if password != nil {
		//lint:ignore SA1019 the legacy format is what the SDK must read.
		block, err = x509.EncryptPEMBlock(rand.Reader, block.Type, keyDER, password, x509.PEMCipherAES256)
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	// A non-certificate block in the certificate file is ignored.
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "COMMENT", Bytes: []byte("x")}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func tlsCertificate(t testing.TB) tls.Certificate {
	t.Helper()
	certFile, keyFile, _ := certFiles(t, nil)
	cert, err := kes.LoadClientCertificate(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestLoadClientCertificate(t *testing.T) {
	password := func(pw string) func() ([]byte, error) {
		return func() ([]byte, error) { return []byte(pw), nil }
	}
	t.Run("plain key, presented to the server", func(t *testing.T) {
		certFile, keyFile, x509Cert := certFiles(t, nil)
		cert, err := kes.LoadClientCertificate(certFile, keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := &recorder{}
		srv := newTLSServer(t, h)
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c, err := kes.NewClient([]string{srv.URL}, kes.WithCertificate(cert), kes.WithRootCAs(pool))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.IsReady(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, want := h.requests()[0].Identity, kes.IdentityOf(x509Cert); got != want {
			t.Fatalf("server saw identity %q, want %q", got, want)
		}
	})
	t.Run("encrypted key", func(t *testing.T) {
		certFile, keyFile, _ := certFiles(t, []byte("correct horse"))
		if _, err := kes.LoadClientCertificate(certFile, keyFile, password("correct horse")); err != nil {
			t.Fatal(err)
		}
		_, err := kes.LoadClientCertificate(certFile, keyFile, password("wrong"))
		if !errors.Is(err, kes.ErrIncorrectPassword) {
			t.Fatalf("wrong password: got %v, want ErrIncorrectPassword", err)
		}
		if _, err := kes.LoadClientCertificate(certFile, keyFile, nil); err == nil {
			t.Fatal("encrypted key without password func succeeded")
		}
		pwErr := errors.New("no terminal")
		_, err = kes.LoadClientCertificate(certFile, keyFile, func() ([]byte, error) { return nil, pwErr })
		if !errors.Is(err, pwErr) {
			t.Fatalf("got %v, want the password func's error", err)
		}
	})
	t.Run("bad files", func(t *testing.T) {
		certFile, keyFile, _ := certFiles(t, nil)
		missing := filepath.Join(t.TempDir(), "missing")
		for _, files := range [][2]string{{missing, keyFile}, {certFile, missing}, {keyFile, keyFile}, {certFile, certFile}} {
			if _, err := kes.LoadClientCertificate(files[0], files[1], nil); err == nil {
				t.Errorf("LoadClientCertificate(%s, %s) succeeded", files[0], files[1])
			}
		}
		other, _, _ := certFiles(t, nil) // certificate of another key
		if _, err := kes.LoadClientCertificate(other, keyFile, nil); err == nil {
			t.Error("mismatching certificate and key accepted")
		}
	})
}
