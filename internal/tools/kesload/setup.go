package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/openkes/kes"
)

// credentials are the TLS files and client identity shared by all servers.
type credentials struct {
	certFile, keyFile string          // the server's certificate and key
	roots             *x509.CertPool  // trusts the server certificate
	client            tls.Certificate // the admin's API-key certificate
	admin             kes.Identity
}

// newCredentials writes a self-signed ECDSA P-256 server certificate for
// 127.0.0.1 into dir and makes an admin API key and its certificate.
func newCredentials(dir string) (*credentials, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kesload"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	c := &credentials{
		certFile: filepath.Join(dir, "server.crt"),
		keyFile:  filepath.Join(dir, "server.key"),
		roots:    x509.NewCertPool(),
	}
	c.roots.AddCert(cert)
	if err := writePEM(c.certFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writePEM(c.keyFile, "PRIVATE KEY", keyDER); err != nil {
		return nil, err
	}
	apiKey, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return nil, err
	}
	c.admin = apiKey.Identity()
	if c.client, err = kes.GenerateCertificate(apiKey, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func writePEM(name, typ string, der []byte) error {
	return os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// clientTLS returns the client side TLS config; the transport sets the
// ALPN protocols.
func (c *credentials) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      c.roots,
		Certificates: []tls.Certificate{c.client},
	}
}

// writeKESConfig writes a kes server config that listens on addr with the
// admin identity, the error log on, the log section's other lines logConf
// (indented; "  audit: on\n" when empty), and the key store keystore (the
// lines below "keystore:", e.g. of [fsKeyStore]), followed by extra (YAML
// of further top-level sections).
func writeKESConfig(name, addr string, c *credentials, keystore, logConf, extra string) error {
	if logConf == "" {
		logConf = "  audit: on\n"
	}
	conf := fmt.Sprintf(`address: %s
admin:
  identity: %s
tls:
  key: %q
  cert: %q
log:
%s  error: on
keystore:
%s`, addr, c.admin, c.keyFile, c.certFile, logConf, keystore) + extra
	return os.WriteFile(name, []byte(conf), 0o600)
}

// fsKeyStore returns the keystore section of an fs key store in dir.
func fsKeyStore(dir string) string { return fmt.Sprintf("  fs:\n    path: %q\n", dir) }

// BuildKES builds ./cmd/kes of this module into dir and returns the
// binary's path.
func BuildKES(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "kes")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/openkes/kes/cmd/kes")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kes: %w\n%s", err, out)
	}
	return bin, nil
}
