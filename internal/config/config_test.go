package config_test

import (
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/config"
)

// base is the File every testdata/<backend>.yml shares, without KeyStore.
func base(ks config.KeyStore) *config.File {
	return &config.File{
		Address:  config.DefaultAddress,
		Admin:    "disabled",
		TLS:      config.TLS{KeyFile: "./server.key", CertFile: "./server.crt", Auth: config.AuthOff},
		Cache:    config.Cache{Any: 5 * time.Minute, Unused: 30 * time.Second},
		KeyStore: ks,
	}
}

func notice(file string, line int, msg string) config.Notice {
	return config.Notice{File: filepath.Join("testdata", file), Line: line, Msg: msg}
}

func TestReadFile(t *testing.T) {
	tests := []struct {
		file string
		want *config.File
	}{
		{"full.yml", &config.File{
			Address: "0.0.0.0:7373",
			Admin:   "c84cf2b5e3f2b0f9da2e2a7d35e7e0a1bfe7b3a8a5d4ee6c5b1e1c0f4a0d5d10",
			TLS: config.TLS{
				KeyFile: "./private.key", CertFile: "./public.crt", Auth: config.AuthOn, CAPath: "./ca",
				Proxy: config.Proxy{
					Identities: []kes.Identity{"4bd2b1d3e35a1f5bd6e3c7f1a0e0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a3f2e"},
					CertHeader: "X-Tls-Client-Cert",
				},
			},
			Cache: config.Cache{Any: 5 * time.Minute, Unused: 20 * time.Second, Offline: time.Hour},
			Log:   config.Log{Error: slog.LevelWarn, Audit: config.LevelOff},
			API: map[string]config.RouteConfig{
				"/v1/ready":     {SkipAuth: true, Timeout: 15 * time.Second},
				"/v1/key/list/": {Timeout: time.Minute},
			},
			Policies: map[string]config.PolicyConfig{
				"my-app": {
					Allow:      []string{"/v1/key/generate/my-app*", "/v1/key/decrypt/my-app*"},
					Deny:       []string{"/v1/key/generate/my-app-internal*"},
					Identities: []kes.Identity{"3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"},
				},
				"my-audit": {
					Allow:      []string{"/v1/log/audit"},
					Identities: []kes.Identity{"9fa7ccfe82a8b0e60cd865600c86fbeca8fc01159a2ed1818d7522471c3a98bf"},
				},
			},
			Keys:     []string{"my-key", "my-key-2"},
			KeyStore: &config.FSConfig{Path: "/var/lib/kes/keys"},
			Notices:  []config.Notice{notice("full.yml", 36, "api route '/v1/unknown' does not exist and is ignored")},
		}},
		{"legacy-v017.yml", &config.File{
			Address: "0.0.0.0:7373",
			Admin:   "disabled",
			TLS: config.TLS{KeyFile: "./server.key", CertFile: "./server.cert", Auth: config.AuthOff,
				Proxy: config.Proxy{CertHeader: "X-Tls-Client-Cert"}},
			Cache: config.Cache{Any: 5 * time.Minute, Unused: 20 * time.Second},
			Log:   config.Log{Error: slog.LevelInfo, Audit: config.LevelOff},
			Policies: map[string]config.PolicyConfig{"my-policy": {
				Allow:      []string{"/v1/key/create/my-key*", "/v1/key/generate/my-key*"},
				Identities: []kes.Identity{"df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258"},
			}},
			KeyStore: &config.FSConfig{Path: "./keys"},
		}},
		{"legacy-v013.yml", &config.File{
			Address: "0.0.0.0:7373",
			Admin:   "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
			TLS:     config.TLS{KeyFile: "./server.key", CertFile: "./server.cert", Auth: config.AuthOff},
			Cache:   config.Cache{Any: 5 * time.Minute, Unused: 30 * time.Second},
			Policies: map[string]config.PolicyConfig{"prod-app": {
				Allow:      []string{"/v1/key/create/app-key", "/v1/key/generate/app-key"},
				Identities: []kes.Identity{"df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258"},
			}},
			KeyStore: &config.VaultConfig{
				Endpoint: "https://127.0.0.1:8200", Engine: "kv", EngineVersion: "v1",
				AppRole:    config.VaultAppRole{Engine: "approle", ID: "f5d6a54f-2ad1-4ba4-8d8a-4fbb3a4a6e5f", Secret: "1ba4b8aa-1ed2-4c2e-81d6-c1eb2c4f5d6a"},
				StatusPing: 10 * time.Second,
			},
			Notices: []config.Notice{notice("legacy-v013.yml", 23, "legacy key 'keys.vault.approle.retry' is ignored")},
		}},
		{"vectors.yml", &config.File{
			Address: "127.0.0.1:7373",
			Admin:   "538973a3f617c8b166cbae1eeed53e121c8bebde136db0c67ab664a0110c8d5d",
			TLS:     config.TLS{KeyFile: "/tmp/vectors/server.key", CertFile: "/tmp/vectors/server.crt", Auth: config.AuthOff},
			Cache:   config.Cache{Any: 5 * time.Minute, Unused: 30 * time.Second},
			Policies: map[string]config.PolicyConfig{"probe": {
				Allow: []string{"/v1/key/create/vec-probe-*", "/v1/key/delete/vec-probe-*", "/v1/key/describe/vec-probe-*"},
				Deny:  []string{"/v1/key/create/vec-probe-denied*"},
				Identities: []kes.Identity{
					"2bd948d5849994c576282da8e8c435d443ca160e3e8ed9895c84004e743abae3",
					"0970ec9a7901ff1d683265a27ce418d6990beb8c8711ed3ff0ae45a2d25c4b2f",
					"4db0aa59ce97df71e42a240719242ea818641516d28d2a19df0963f5380b284f",
					"e209bb13b678c4a7463ec389bf039714bc778efe09d54ef1d259ae6045448527",
					"cb8e69d31b26ab95c43aeda2cfa375817e8ea111dcf472eb72cc1e0fe4bdeec1",
					"015a9cd70d0cf226ca9bcdecba837a3d52e8d843a9ee9571c70cdb03f776c93f",
					"aeb84fdc4ed6fc04eb3895b603f8da0d8fc1a0cd429dac1a66c3f12bdfe93f06",
				},
			}},
			KeyStore: &config.FSConfig{Path: "/tmp/vectors/keystore"},
		}},
		{"fs.yml", base(&config.FSConfig{Path: "/var/lib/kes"})},
		{"vault.yml", withNotices(base(&config.VaultConfig{
			Endpoint: "https://127.0.0.1:8200", Engine: "secrets", EngineVersion: "v2", Namespace: "ns1", Prefix: "tenant-1",
			Transit:    config.VaultTransit{Engine: "my-transit", Key: "my-transit-key"},
			AppRole:    config.VaultAppRole{Engine: "my-approle", Namespace: "/", ID: "f5d6a54f", Secret: "1ba4b8aa"},
			TLS:        config.VaultTLS{KeyFile: "./vault-client.key", CertFile: "./vault-client.crt", CAPath: "./vault-ca.pem"},
			StatusPing: 10 * time.Second,
		}), notice("vault.yml", 21, "legacy key 'keystore.vault.approle.retry' is ignored"))},
		{"vault-kubernetes.yml", withNotices(base(&config.VaultConfig{
			Endpoint: "https://vault.example.com:8200", Engine: "kv", EngineVersion: "v1",
			Kubernetes: config.VaultKubernetes{Engine: "k8s", Namespace: "team", Role: "kes", JWT: "/var/run/secrets/kubernetes.io/serviceaccount/token"},
			StatusPing: config.DefaultVaultStatusPing,
		}), notice("vault-kubernetes.yml", 14, "legacy key 'keystore.vault.kubernetes.retry' is ignored"))},
		{"fortanix.yml", base(&config.FortanixConfig{
			Endpoint: "https://sdkms.fortanix.com", GroupID: "8b2f0e2a", APIKey: "NjE1ZmQ4MTYtMjEzOS00", CAPath: "./fortanix-ca.pem",
		})},
		{"keysecure.yml", withNotices(base(&config.KeySecureConfig{
			Endpoint: "https://127.0.0.1", Token: "ehTdmWGS7fBq", Domain: "root", CAPath: "./keysecure-ca.pem",
		}), notice("keysecure.yml", 13, "legacy key 'keystore.gemalto.keysecure.credentials.retry' is ignored"))},
		{"gcp.yml", base(&config.GCPConfig{
			ProjectID: "my-project", Endpoint: "secretmanager.googleapis.com:443",
			Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
			Credentials: config.GCPCredentials{
				ClientEmail: "kes@my-project.iam.gserviceaccount.com", ClientID: "1234567890", PrivateKeyID: "0a1b2c3d",
				PrivateKey: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
			},
		})},
		{"aws.yml", base(&config.AWSConfig{
			Endpoint: "secretsmanager.us-east-2.amazonaws.com", Region: "us-east-2", KMSKey: "alias/kes",
			AccessKey: "AKIAIOSFODNN7EXAMPLE", SecretKey: "wJalrXUtnFEMI", SessionToken: "FwoGZXIvYXdz",
		})},
		{"azure.yml", base(&config.AzureConfig{
			Endpoint:    "https://kes.vault.azure.net",
			Credentials: config.AzureCredentials{TenantID: "3a2c1b0d", ClientID: "7e6f5a4b", ClientSecret: "s3cr3t"},
		})},
		{"azure-managed.yml", base(&config.AzureConfig{
			Endpoint: "https://kes.vault.azure.net", ManagedIdentityClientID: "9c8d7e6f",
		})},
		{"entrust.yml", base(&config.EntrustConfig{
			Endpoint: "https://keycontrol.example.com", VaultID: "1b2c3d4e", BoxID: "kes-box",
			Username: "kes", Password: "p4ssw0rd", CAPath: "./entrust-ca.pem",
		})},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := config.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%#v\nwant\n%#v", got, tt.want)
				if !reflect.DeepEqual(got.KeyStore, tt.want.KeyStore) {
					t.Errorf("keystore: got %#v, want %#v", got.KeyStore, tt.want.KeyStore)
				}
			}
		})
	}
}

func withNotices(f *config.File, n ...config.Notice) *config.File {
	f.Notices = n
	return f
}

func TestBanner(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"fs.yml", "Filesystem: /var/lib/kes"},
		{"vault.yml", "Hashicorp Vault: https://127.0.0.1:8200"},
		{"fortanix.yml", "Fortanix SDKMS: https://sdkms.fortanix.com"},
		{"keysecure.yml", "Gemalto KeySecure: https://127.0.0.1"},
		{"gcp.yml", "GCP SecretManager: Project=my-project"},
		{"aws.yml", "AWS SecretsManager: secretsmanager.us-east-2.amazonaws.com"},
		{"azure.yml", "Azure KeyVault: https://kes.vault.azure.net"},
		{"entrust.yml", "Entrust KeyControl: https://keycontrol.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := config.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.KeyStore.Banner(); got != tt.want {
				t.Errorf("Banner() = %q, want %q", got, tt.want)
			}
		})
	}
}
