package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/openkes/kes"
)

// newServerDir returns a new directory holding a server certificate for
// 127.0.0.1 (writeDevServerCert) and a fresh admin API key, for a test
// that writes a config file with writeServerConfig.
func newServerDir(t *testing.T) (dir string, admin kes.APIKey) {
	t.Helper()
	dir = t.TempDir()
	if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, admin
}

// serverConfig returns the first sections of a server config file: listen
// on 127.0.0.1:0, admin as the admin identity and the certificate that
// writeDevServerCert wrote to dir. The caller appends the other top-level
// sections (keystore, log, ...).
func serverConfig(dir string, admin kes.Identity) string {
	return "address: 127.0.0.1:0\nadmin:\n  identity: " + admin.String() + "\n" +
		"tls:\n  key: " + filepath.Join(dir, "server.key") + "\n  cert: " + filepath.Join(dir, "server.crt") + "\n"
}

// writeServerConfig writes dir/config.yml, serverConfig followed by rest,
// and returns its path. Writing again replaces the file (for a reload).
func writeServerConfig(t *testing.T, dir string, admin kes.Identity, rest string) string {
	t.Helper()
	file := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(file, []byte(serverConfig(dir, admin)+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// writeFSServerConfig writes the config file of writeServerConfig with the
// audit log off and an fs key store in dir/keys, followed by extra.
func writeFSServerConfig(t *testing.T, dir string, admin kes.Identity, extra string) string {
	t.Helper()
	return writeServerConfig(t, dir, admin, "log:\n  audit: off\nkeystore:\n  fs:\n    path: "+filepath.Join(dir, "keys")+"\n"+extra)
}

// serverCertPool returns a pool holding the server certificate in dir,
// which writeDevServerCert (or `kes server --dev`) wrote there.
func serverCertPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", filepath.Join(dir, "server.crt"))
	}
	return pool
}

// devClient returns an HTTP client of the admin of `kes server --dev`
// whose certificates are in dir: the admin's client certificate, with the
// server's certificate as the only root.
func devClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCertPool(t, dir), Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
