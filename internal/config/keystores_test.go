package config_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/openkes/kes/internal/config"
)

func TestKeyStoreErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"none", doc("admin:", "  identity: x", "tls:", "  key: k", "  cert: c"), 1,
			"kesconf: no keystore specified", config.ErrNoKeyStore},
		{"empty-section", ks(), 6, "kesconf: no keystore specified", config.ErrNoKeyStore},
		{"outer-only", ks("  aws:"), 6, "kesconf: no keystore specified", config.ErrNoKeyStore},
		{"two", ks("  fs:", "    path: p", "  vault:", "    endpoint: e"), 9,
			"kesconf: invalid keystore config: more than once keystore specified", config.ErrMultipleKeyStores},
		{"keystore-and-legacy-keys", doc("admin:", "  identity: x", "tls:", "  key: k", "  cert: c",
			"keys:", "  fs:", "    path: a", "keystore:", "  fs:", "    path: b"), 10,
			"kesconf: invalid keystore config: more than once keystore specified", config.ErrMultipleKeyStores},
		{"unknown-backend", ks("  memory: {}"), 7, "kesconf: unknown key 'keystore.memory'", nil},
		{"unknown-nested-backend", ks("  aws:", "    kms: {}"), 8, "kesconf: unknown key 'keystore.aws.kms'", nil},
		{"generic", ks("  generic:", "    endpoint: http://127.0.0.1:8080"), 7,
			"kesconf: keystore 'generic' is no longer supported; use one of the other keystores", nil},
		{"kes", ks("  kes:", "    endpoint: [https://127.0.0.1:7373]"), 7,
			"kesconf: keystore 'kes' is no longer supported; use one of the other keystores", nil},
		{"fs-empty-path", ks("  fs:", "    path: \"\""), 7, "kesconf: invalid fs keystore: no path specified", nil},
		{"fs-null", ks("  fs:"), 7, "kesconf: invalid fs keystore: no path specified", nil},
		{"fs-unknown", ks("  fs:", "    dir: /tmp"), 8, "kesconf: unknown key 'keystore.fs.dir'", nil},

		{"vault-endpoint", ks("  vault:", "    approle: {id: a, secret: b}"), 7, "kesconf: invalid vault keystore: no endpoint specified", nil},
		{"vault-version", ks("  vault:", "    endpoint: e", "    version: v3", "    approle: {id: a, secret: b}"), 7,
			"vault: invalid engine API version", nil},
		{"vault-no-auth", ks("  vault:", "    endpoint: e"), 7, "kesconf: invalid vault keystore: no authentication method specified", nil},
		{"vault-two-auth", ks("  vault:", "    endpoint: e", "    approle: {id: a, secret: b}", "    kubernetes: {jwt: j}"), 10,
			"kesconf: invalid vault keystore: more than one authentication method specified", nil},
		{"vault-approle-id", ks("  vault:", "    endpoint: e", "    approle:", "      secret: b"), 9,
			"kesconf: invalid vault keystore: no AppRole ID specified", nil},
		{"vault-approle-secret", ks("  vault:", "    endpoint: e", "    approle:", "      id: a"), 9,
			"kesconf: invalid vault keystore: no AppRole secret specified", nil},
		{"vault-kubernetes-jwt", ks("  vault:", "    endpoint: e", "    kubernetes:", "      role: r"), 9,
			"kesconf: invalid vault keystore: no Kubernetes JWT specified", nil},
		{"vault-transit-key", ks("  vault:", "    endpoint: e", "    transit:", "      engine: t", "    approle: {id: a, secret: b}"), 9,
			"kesconf: invalid vault keystore: no transit key specified", nil},
		{"vault-tls-pair", ks("  vault:", "    endpoint: e", "    approle: {id: a, secret: b}", "    tls:", "      key: k"), 7,
			"kesconf: invalid vault keystore: tls.key and tls.cert must be specified together", nil},
		{"vault-ping", ks("  vault:", "    endpoint: e", "    status:", "      ping: -1s"), 10,
			"kesconf: invalid vault keystore: invalid status ping '-1s'", nil},
		{"vault-ping-integer", ks("  vault:", "    endpoint: e", "    status:", "      ping: 10"), 10,
			"kesconf: invalid value for 'keystore.vault.status.ping': expected a duration such as 15s or 5m, found '10'", nil},

		{"fortanix-endpoint", ks("  fortanix:", "    sdkms:", "      credentials: {key: k}"), 8,
			"kesconf: invalid fortanix keystore: no endpoint specified", nil},
		{"fortanix-key", ks("  fortanix:", "    sdkms:", "      endpoint: e"), 8,
			"kesconf: invalid fortanix keystore: no API key specified", nil},
		{"keysecure-endpoint", ks("  gemalto:", "    keysecure:", "      credentials: {token: t}"), 8,
			"kesconf: invalid gemalto keystore: no endpoint specified", nil},
		{"keysecure-token", ks("  gemalto:", "    keysecure:", "      endpoint: e"), 8,
			"kesconf: invalid gemalto keystore: no token specified", nil},
		{"gcp-project", ks("  gcp:", "    secretmanager:", "      endpoint: e"), 8,
			"kesconf: invalid GCP keystore: no project ID specified", nil},
		{"gcp-partial-credentials", ks("  gcp:", "    secretmanager:", "      project_id: p", "      credentials:", "        client_email: a@b"), 10,
			"kesconf: invalid GCP keystore: no client ID specified", nil},
		{"gcp-scopes", ks("  gcp:", "    secretmanager:", "      project_id: p", "      scopes: s"), 10,
			"kesconf: invalid value for 'keystore.gcp.secretmanager.scopes': expected a sequence, found a scalar", nil},
		{"aws-endpoint", ks("  aws:", "    secretsmanager:", "      region: r"), 8, "kesconf: invalid AWS keystore: no endpoint specified", nil},
		{"aws-region", ks("  aws:", "    secretsmanager:", "      endpoint: e"), 8, "kesconf: invalid AWS keystore: no region specified", nil},
		{"azure-endpoint", ks("  azure:", "    keyvault: {}"), 8, "kesconf: invalid Azure keystore: no endpoint specified", nil},
		{"azure-both", ks("  azure:", "    keyvault:", "      endpoint: e", "      credentials: {tenant_id: t, client_id: c, client_secret: s}",
			"      managed_identity: {client_id: m}"), 11,
			"kesconf: invalid Azure keystore: only one of credentials and managed_identity may be specified", nil},
		{"azure-credentials", ks("  azure:", "    keyvault:", "      endpoint: e", "      credentials: {tenant_id: t, client_id: c}"), 10,
			"kesconf: invalid Azure keystore: no client secret specified", nil},
		{"azure-managed", ks("  azure:", "    keyvault:", "      endpoint: e", "      managed_identity: {client_id: \"\"}"), 10,
			"kesconf: invalid Azure keystore: no managed identity client ID specified", nil},
		{"entrust-box", ks("  entrust:", "    keycontrol:", "      endpoint: e", "      vault_id: v"), 8,
			"kesconf: invalid Entrust keystore: no box ID specified", nil},
		{"entrust-password", ks("  entrust:", "    keycontrol:", "      endpoint: e", "      vault_id: v", "      box_id: b",
			"      credentials: {username: u}"), 8, "kesconf: invalid Entrust keystore: no password specified", nil},
	})
}

func TestConnectNotBuilt(t *testing.T) {
	tests := []struct{ file, name string }{
		{"fortanix.yml", "fortanix.sdkms"},
		{"keysecure.yml", "gemalto.keysecure"},
		{"gcp.yml", "gcp.secretmanager"},
		{"aws.yml", "aws.secretsmanager"},
		{"azure.yml", "azure.keyvault"},
		{"entrust.yml", "entrust.keycontrol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			s, err := f.KeyStore.Connect(t.Context(), nil)
			var nb *config.NotBuiltError
			if !errors.As(err, &nb) || nb.Name != tt.name || s != nil {
				t.Fatalf("Connect: got %v, %v; want a NotBuiltError for %q", s, err, tt.name)
			}
			want := "keystore '" + tt.name + "' is not built yet in this OpenKES release"
			if err.Error() != want {
				t.Errorf("Connect: got %q, want %q", err, want)
			}
		})
	}
}

func TestConnectFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	f, err := config.Parse([]byte(ks("  fs:", "    path: "+dir)), "kes.yml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.KeyStore.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "my-key")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get: got %q, %v; want %q", got, err, "value")
	}
}
