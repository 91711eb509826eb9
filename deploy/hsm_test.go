package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerBinaryHSM: the image's binary is static (CGO_ENABLED=0) and
// cannot load a PKCS#11 module, so a configuration with the hsm section
// (docs/hsm.md) stops it at start with exit 1 and an error that says so,
// without a crash and without touching the key store's records.
func TestContainerBinaryHSM(t *testing.T) {
	bin, err := kesBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yml")
	yml := "address: 127.0.0.1:0\nadmin:\n  identity: disabled\ntls:\n  key: " + filepath.Join(dir, "k.pem") +
		"\n  cert: " + filepath.Join(dir, "c.pem") + "\nkeystore:\n  fs:\n    path: " + filepath.Join(dir, "keys") +
		"\nhsm:\n  module: /usr/lib/softhsm/libsofthsm2.so\n  token: kes\n  pin_file: " + filepath.Join(dir, "pin") +
		"\n  key: kes-wrap\n"
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "server", "--config", config).CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("kes server with an hsm section: %v, want exit 1\n%s", err, out)
	}
	const want = "Error: failed to connect to the key store: hsm: this kes binary was built without cgo and cannot load a PKCS#11 module; use a build with CGO_ENABLED=1"
	if !strings.Contains(string(out), want) {
		t.Errorf("kes server with an hsm section printed\n%s\nwant the line %q", out, want)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "keys")); len(entries) != 0 {
		t.Errorf("the failed start wrote %d files in the key store", len(entries))
	}
}
