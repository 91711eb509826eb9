package config_test

import (
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/apiroute"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/stores"
	"github.com/openkes/kes/internal/keystore/vault"
)

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
			Cache: cache.Config{Any: 5 * time.Minute, Unused: 20 * time.Second, Offline: time.Hour},
			Log:   config.Log{Error: slog.LevelWarn, Audit: config.LevelOff},
			API: map[string]apiroute.Config{
				"/v1/ready":     {SkipAuth: true, Timeout: 15 * time.Second},
				"/v1/key/list/": {Timeout: time.Minute},
			},
			Policies: map[string]auth.PolicyConfig{
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
			KeyStore: &stores.FS{Path: "/var/lib/kes/keys"},
			// Files without key_deletion soft-delete keys for a week
			// (an OpenKES default on purpose, docs/key-deletion.md).
			KeyDeletion: config.KeyDeletion{Retention: config.DefaultRetention},
			Notices:     []config.Notice{notice("full.yml", 36, "api route '/v1/unknown' does not exist and is ignored")},
		}},
		{"legacy-v017.yml", &config.File{
			Address: "0.0.0.0:7373",
			Admin:   "disabled",
			TLS: config.TLS{KeyFile: "./server.key", CertFile: "./server.cert", Auth: config.AuthOff,
				Proxy: config.Proxy{CertHeader: "X-Tls-Client-Cert"}},
			Cache: cache.Config{Any: 5 * time.Minute, Unused: 20 * time.Second},
			Log:   config.Log{Error: slog.LevelInfo, Audit: config.LevelOff},
			Policies: map[string]auth.PolicyConfig{"my-policy": {
				Allow:      []string{"/v1/key/create/my-key*", "/v1/key/generate/my-key*"},
				Identities: []kes.Identity{"df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258"},
			}},
			KeyStore:    &stores.FS{Path: "./keys"},
			KeyDeletion: config.KeyDeletion{Retention: config.DefaultRetention},
		}},
		{"legacy-v013.yml", &config.File{
			Address: "0.0.0.0:7373",
			Admin:   "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
			TLS:     config.TLS{KeyFile: "./server.key", CertFile: "./server.cert", Auth: config.AuthOff},
			Cache:   cache.Config{},
			Policies: map[string]auth.PolicyConfig{"prod-app": {
				Allow:      []string{"/v1/key/create/app-key", "/v1/key/generate/app-key"},
				Identities: []kes.Identity{"df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258"},
			}},
			// The store's defaults (engine kv, v1, approle) are the vault
			// package's: the decoded Config leaves them empty.
			KeyStore: &stores.Vault{Config: vault.Config{
				Endpoint:   "https://127.0.0.1:8200",
				AppRole:    &vault.AppRole{ID: "f5d6a54f-2ad1-4ba4-8d8a-4fbb3a4a6e5f", Secret: "1ba4b8aa-1ed2-4c2e-81d6-c1eb2c4f5d6a"},
				StatusPing: 10 * time.Second,
			}},
			KeyDeletion: config.KeyDeletion{Retention: config.DefaultRetention},
			Notices:     []config.Notice{notice("legacy-v013.yml", 23, "legacy key 'keys.vault.approle.retry' is ignored")},
		}},
		{"vectors.yml", &config.File{
			Address: "127.0.0.1:7373",
			Admin:   "538973a3f617c8b166cbae1eeed53e121c8bebde136db0c67ab664a0110c8d5d",
			TLS:     config.TLS{KeyFile: "/tmp/vectors/server.key", CertFile: "/tmp/vectors/server.crt", Auth: config.AuthOff},
			Cache:   cache.Config{},
			Policies: map[string]auth.PolicyConfig{"probe": {
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
			KeyStore:    &stores.FS{Path: "/tmp/vectors/keystore"},
			KeyDeletion: config.KeyDeletion{Retention: config.DefaultRetention},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := config.ReadFile(filepath.Join("testdata", tt.file), schema)
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
