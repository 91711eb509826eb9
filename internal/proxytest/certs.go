package proxytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	// File is a PEM file holding Cert, for a peer's or the server's
	// roots (tls.ca).
	File string
	// Pool holds Cert only.
	Pool *x509.CertPool

	key *ecdsa.PrivateKey
	dir string
}

// NewCA returns a new CA whose files live in t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "proxytest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, Pool: x509.NewCertPool(), key: key, dir: t.TempDir()}
	ca.Pool.AddCert(cert)
	ca.File = filepath.Join(ca.dir, "ca.crt")
	writeFile(t, ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

// Usage selects what an issued certificate is for.
type Usage int

// Usages of [CA.Issue].
const (
	ClientAuth Usage = 1 << iota // a TLS client
	ServerAuth                   // a TLS server for localhost and 127.0.0.1
	IsCA                         // an intermediate CA (no extended key usage)
)

// Cert is a certificate and its key, in memory and in PEM files.
type Cert struct {
	TLS      tls.Certificate
	Leaf     *x509.Certificate
	Identity kes.Identity
	// CertFile holds the certificate, KeyFile the PKCS#8 key, and
	// PEMFile both (HAProxy's crt).
	CertFile, KeyFile, PEMFile string
	// PEM is the certificate's PEM encoding.
	PEM []byte
}

// Issue returns a new certificate named name, signed by ca, for usage,
// valid for a day.
func (ca *CA) Issue(t testing.TB, name string, usage Usage) *Cert {
	t.Helper()
	return ca.IssueUntil(t, name, usage, time.Now().Add(24*time.Hour))
}

// IssueUntil is [CA.Issue] for a certificate that expires at notAfter.
func (ca *CA) IssueUntil(t testing.TB, name string, usage Usage, notAfter time.Time) *Cert {
	t.Helper()
	return ca.issue(t, name, usage, notAfter, nil)
}

// maxIssueTries bounds [CA.IssueWhere]'s search. A property that one
// certificate in a few hundred has (the test's) is then missed with a
// probability far below 1e-100.
const maxIssueTries = 1 << 16

// IssueWhere is [CA.Issue] for a certificate whose DER encoding has the
// property ok, one that the test needs and that depends on the random
// parts of a certificate (serial number, signature): it signs the same
// key with fresh serial numbers until ok holds, up to 65536 times, and
// fails the test if it never does.
func (ca *CA) IssueWhere(t testing.TB, name string, usage Usage, ok func(der []byte) bool) *Cert {
	t.Helper()
	return ca.issue(t, name, usage, time.Now().Add(24*time.Hour), ok)
}

func (ca *CA) issue(t testing.TB, name string, usage Usage, notAfter time.Time, ok func(der []byte) bool) *Cert {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if usage&ClientAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if usage&ServerAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if usage&IsCA != 0 {
		tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	for tries := 1; ok != nil && !ok(der); tries++ {
		if tries == maxIssueTries {
			t.Fatalf("proxytest: no certificate %s with the wanted property in %d tries", name, tries)
		}
		tmpl.SerialNumber = serial(t)
		if der, err = x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key); err != nil {
			t.Fatal(err)
		}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	c := &Cert{
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf:     leaf,
		Identity: kes.IdentityOf(leaf),
		CertFile: filepath.Join(ca.dir, name+".crt"),
		KeyFile:  filepath.Join(ca.dir, name+".key"),
		PEMFile:  filepath.Join(ca.dir, name+".pem"),
		PEM:      certPEM,
	}
	writeFile(t, c.CertFile, certPEM)
	writeFile(t, c.KeyFile, keyPEM)
	writeFile(t, c.PEMFile, append(append([]byte{}, certPEM...), keyPEM...))
	return c
}

// AsCA returns a CA that issues with c, an intermediate (issued with
// [IsCA]). Its Pool holds c only.
func (c *Cert) AsCA(t testing.TB) *CA {
	t.Helper()
	key, ok := c.TLS.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !c.Leaf.IsCA {
		t.Fatalf("proxytest: %s is not a CA issued by proxytest", c.Leaf.Subject.CommonName)
	}
	ca := &CA{Cert: c.Leaf, File: c.CertFile, Pool: x509.NewCertPool(), key: key, dir: t.TempDir()}
	ca.Pool.AddCert(c.Leaf)
	return ca
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
