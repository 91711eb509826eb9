package stores_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/stores"
)

// hsmSchema is the server's schema with the hsm section.
var hsmSchema = &config.Schema{KeyStores: stores.All, HSM: stores.DecodeHSM}

func TestDecodeHSM(t *testing.T) {
	t.Setenv("KES_TEST_HSM_PIN", "1234")
	f, err := config.ReadFile("testdata/hsm.yml", hsmSchema)
	if err != nil {
		t.Fatal(err)
	}
	want := &stores.HSM{Config: hsm.Config{
		Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "kes", PIN: "1234", Key: "kes-wrap", Sessions: 4,
	}}
	if !reflect.DeepEqual(f.HSM, want) {
		t.Errorf("HSM = %#v, want %#v", f.HSM, want)
	}
	if !config.HasSecrets(f) {
		t.Error("HasSecrets = false with a PIN in the hsm section")
	}
	if b := f.HSM.Banner(); strings.Contains(b, "1234") || !strings.Contains(b, "kes-wrap") {
		t.Errorf("Banner = %q", b)
	}
}

// TestDecodeHSMErrors: every mistake is reported at its line.
func TestDecodeHSMErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"no module", []string{"hsm:", "  token: kes", "  pin: 1", "  key: k"},
			"f.yml:9: kesconf: invalid hsm section: no PKCS#11 module specified"},
		{"token and slot", []string{"hsm:", "  module: m.so", "  token: kes", "  slot: 1", "  pin: 1", "  key: k"},
			"f.yml:9: kesconf: invalid hsm section: only one of token and slot may be specified"},
		{"bad slot", []string{"hsm:", "  module: m.so", "  slot: one", "  pin: 1", "  key: k"},
			"f.yml:11: kesconf: invalid hsm section: slot 'one' is not a slot number"},
		{"no PIN", []string{"hsm:", "  module: m.so", "  token: kes", "  key: k"},
			"f.yml:9: kesconf: invalid hsm section: no PIN or PIN file specified"},
		{"PIN and PIN file", []string{"hsm:", "  module: m.so", "  token: kes", "  pin: 1", "  pin_file: p", "  key: k"},
			"f.yml:9: kesconf: invalid hsm section: only one of pin and pin_file may be specified"},
		{"no key", []string{"hsm:", "  module: m.so", "  slot: 0", "  pin_file: p"},
			"f.yml:9: kesconf: invalid hsm section: no key label specified"},
		{"bad sessions", []string{"hsm:", "  module: m.so", "  token: kes", "  pin: 1", "  key: k", "  sessions: -1"},
			"f.yml:14: kesconf: invalid hsm section: sessions '-1' is not a positive number"},
		{"unknown key", []string{"hsm:", "  module: m.so", "  label: kes"},
			"f.yml:11: kesconf: unknown key 'hsm.label'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := ks("  fs:", "    path: /tmp/k") + strings.Join(tt.lines, "\n") + "\n"
			_, err := config.Parse([]byte(data), "f.yml", hsmSchema)
			var cerr *config.Error
			if !errors.As(err, &cerr) || err.Error() != tt.want {
				t.Fatalf("Parse = %v, want %q", err, tt.want)
			}
		})
	}
	// A schema without the hsm section (the table of another program)
	// refuses it as an unknown key.
	data := ks("  fs:", "    path: /tmp/k") + "hsm:\n  module: m.so\n"
	if _, err := config.Parse([]byte(data), "f.yml", schema); err == nil || !strings.Contains(err.Error(), "unknown key 'hsm'") {
		t.Errorf("Parse without Schema.HSM = %v, want unknown key 'hsm'", err)
	}
}
