package stores_test

import (
	"fmt"
	"testing"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/fake"
)

// TestConnectVendors: a section of each REST vendor store, in upstream's
// form, connects to the vendor's fake and stores a key there.
func TestConnectVendors(t *testing.T) {
	f, g, e := fake.NewFortanix(t), fake.NewGemalto(t), fake.NewEntrust(t)
	tests := []struct {
		name, section string
		stored        func() bool
	}{
		{"fortanix", fmt.Sprintf("  fortanix:\n    sdkms:\n      endpoint: %s\n      credentials: {key: %s}\n      tls: {ca: %s}",
			f.URL(), fake.FortanixAPIKey, f.CAFile(t)),
			func() bool { _, ok := f.Object("my-key"); return ok }},
		{"gemalto", fmt.Sprintf("  gemalto:\n    keysecure:\n      endpoint: %s\n      credentials: {token: %s, domain: root, retry: 15s}\n      tls: {ca: %s}",
			g.URL(), fake.GemaltoRefreshToken, g.CAFile(t)),
			func() bool { _, ok := g.Secret("my-key"); return ok }},
		{"entrust", fmt.Sprintf("  entrust:\n    keycontrol:\n      endpoint: %s\n      vault_id: %s\n      box_id: %s\n"+
			"      credentials: {username: %s, password: %s}\n      tls: {ca: %s}",
			e.URL(), fake.EntrustVaultID, fake.EntrustBoxID, fake.EntrustUser, fake.EntrustPassword, e.CAFile(t)),
			func() bool { _, ok := e.Secret("my-key"); return ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := config.Parse([]byte(ks(tt.section)), "kes.yml", schema)
			if err != nil {
				t.Fatal(err)
			}
			s, err := file.KeyStore.Connect(t.Context(), nil)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(t.Context(), "my-key"); err != nil || string(got) != "value" || !tt.stored() {
				t.Fatalf("Get = %q, %v; stored at the vendor: %v", got, err, tt.stored())
			}
		})
	}
}
