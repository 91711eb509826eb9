package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretConfigMode: a configuration file that holds a secret and that
// others can read is reported on the error log at start, with the file and
// its mode but never the secret.
func TestSecretConfigMode(t *testing.T) {
	const secret = "s3cret-key-password"
	conf := "admin:\n  identity: disabled\ntls:\n  key: ./server.key\n  cert: ./server.crt\n  password: " + secret +
		"\nkeystore:\n  fs:\n    path: " + t.TempDir() + "\n"
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false},
		{0o640, true},
		{0o644, true},
	} {
		file := filepath.Join(t.TempDir(), "kes.yml")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, tt.mode); err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		if _, err := readSetup(&Env{Stderr: &stderr}, file); err != nil {
			t.Fatal(err)
		}
		out := stderr.String()
		if strings.Contains(out, secret) {
			t.Fatalf("mode %o: the secret is in the log: %s", tt.mode, out)
		}
		got := strings.Contains(out, "level=ERROR")
		if got != tt.warn {
			t.Errorf("mode %o: warned %v, want %v: %q", tt.mode, got, tt.warn, out)
		}
		if tt.warn && (!strings.Contains(out, "file="+file) || !strings.Contains(out, fmt.Sprintf("mode=%04o", tt.mode))) {
			t.Errorf("mode %o: the warning lacks the file or mode: %q", tt.mode, out)
		}
	}
}
