package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/kes"
)

// TestProxyConfigFile: tls.proxy of a configuration file reaches the
// server (upstream HEAD parsed and ignored it).
func TestProxyConfigFile(t *testing.T) {
	const proxyID = "2d0b7b0fc6b8c1dcb5c5d3ddfbf2f5a58ac0d1a6f0e48ce01d2c9e9b3f1a0f7e"
	conf := "admin:\n  identity: disabled\ntls:\n  key: ./server.key\n  cert: ./server.crt\n" +
		"  proxy:\n    identities:\n    - " + proxyID + "\n    header:\n      cert: X-Tls-Client-Cert\n" +
		"keystore:\n  fs:\n    path: " + t.TempDir() + "\n"
	file := filepath.Join(t.TempDir(), "kes.yml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	setup, err := readSetup(&Env{Stderr: new(strings.Builder)}, file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(setup.TLS.ProxyIdentities, []kes.Identity{proxyID}) || setup.TLS.ProxyHeader != "X-Tls-Client-Cert" {
		t.Fatalf("TLS config %+v, want the file's proxy identity and header", setup.TLS)
	}
}
