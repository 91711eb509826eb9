package vault_test

import (
	"fmt"
	"testing"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/stores"
	"github.com/openkes/kes/internal/vaulttest"
)

// TestUpstreamConfigFile: a KES config file written for upstream with a
// vault: section connects through internal/config and the store table
// unchanged. (A test may import them; the vault package never does.)
func TestUpstreamConfigFile(t *testing.T) {
	files := vaulttest.NewTLSFiles(t)
	srv := vaulttest.Start(t, &vaulttest.Options{TLS: files, RequireClientCert: true})
	f := newFixture(t, srv, "v2", "tenant-1", true, nil)
	yml := fmt.Sprintf(`admin:
  identity: disabled
tls:
  key: ./server.key
  cert: ./server.crt
keystore:
  vault:
    endpoint: %s
    engine: %s
    version: v2
    prefix: tenant-1
    transit:
      engine: %s
      key: kes-key
    approle:
      engine: %s
      namespace: /
      id: %s
      secret: %s
      retry: 15s
    tls:
      key: %s
      cert: %s
      ca: %s
    status:
      ping: 10s
`, srv.TLSURL(), f.engine(), f.transitEngine(), f.mount(), f.roleID(), f.secretID(),
		files.ClientKeyFile, files.ClientCertFile, files.CAFile)
	file, err := config.Parse([]byte(yml), "kes.yml", &config.Schema{KeyStores: stores.All})
	if err != nil {
		t.Fatal(err)
	}
	s, err := file.KeyStore.Connect(t.Context(), nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer s.Close()
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status: %v", err)
	}
}
