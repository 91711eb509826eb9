package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openkes/kes/internal/config"
)

func TestHasSecrets(t *testing.T) {
	// Each store's credentials: TestHasSecrets in internal/keystore/stores.
	for file, want := range map[string]bool{
		"full.yml": false, // password: ""
		"../../keystore/stores/testdata/vault.yml": true, // AppRole secret
		"../../keystore/stores/testdata/fs.yml":    false,
	} {
		f, err := config.ReadFile(filepath.Join("testdata", file), schema)
		if err != nil {
			t.Fatal(err)
		}
		if got := config.HasSecrets(f); got != want {
			t.Errorf("%s: HasSecrets = %v, want %v", file, got, want)
		}
	}
	f, err := config.Parse([]byte("admin: {identity: disabled}\ntls: {key: k, cert: c, password: s3cret}\nkeystore: {fs: {path: /x}}\n"), "pw.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	if !config.HasSecrets(f) {
		t.Error("tls.password: HasSecrets = false")
	}
}

func TestExposedSecrets(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "keystore", "stores", "testdata", "vault.yml"))
	if err != nil {
		t.Fatal(err)
	}
	noSecrets, err := os.ReadFile(filepath.Join("..", "keystore", "stores", "testdata", "fs.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		data []byte
		mode os.FileMode
		want bool
	}{
		{data, 0o600, false},
		{data, 0o400, false},
		{data, 0o640, true},
		{data, 0o604, true},
		{data, 0o644, true},
		{data, 0o620, false}, // group-writable, not readable: not a leak
		{noSecrets, 0o644, false},
	} {
		name := filepath.Join(dir, "kes.yml")
		if err := os.WriteFile(name, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, tt.mode); err != nil {
			t.Fatal(err)
		}
		f, err := config.ReadFile(name, schema)
		if err != nil {
			t.Fatal(err)
		}
		mode, exposed := config.ExposedSecrets(name, f)
		if exposed != tt.want || (exposed && mode != tt.mode) {
			t.Errorf("mode %o: got (%o, %v), want %v", tt.mode, mode, exposed, tt.want)
		}
		os.Remove(name)
	}
}
