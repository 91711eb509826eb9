package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openkes/kes/internal/config"
)

// FuzzParse checks that Parse never panics and that every error it returns
// is positioned.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(valid("a: &a [x, *a]")))
	f.Add([]byte("x: &x {y: *x}\nadmin: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "fuzz.yml", schema)
		if err != nil {
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse: error %v is not a *config.Error", err)
			}
			return
		}
		if cfg.Admin == "" || cfg.KeyStore == nil || cfg.TLS.KeyFile == "" || cfg.TLS.CertFile == "" {
			t.Fatalf("Parse: accepted an incomplete config: %+v", cfg)
		}
	})
}
