package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/openkes/kes/internal/vaulttest"
)

// TestVaultServer runs `kes server` on a real Vault (KV v2, AppRole) from
// an upstream-style config file, then stops Vault under load: keys in the
// cache keep being served, uncached keys and readiness fail cleanly, and
// after Vault is back the server works again without a restart.
func TestVaultServer(t *testing.T) {
	vault := vaulttest.Start(t, nil)
	setupVault := func() {
		vault.EnableKV(t, "kes-kv", "v2")
		vault.WritePolicy(t, "kes", `
path "kes-kv/data/*"     { capabilities = ["create", "read"] }
path "kes-kv/metadata/*" { capabilities = ["list", "delete"] }`)
		vault.AppRole(t, "approle", "kes", "kes-role-id", "kes-secret-id", map[string]any{"token_policies": "kes", "token_ttl": "1h"})
	}
	setupVault()

	dir, apiKey := newServerDir(t)
	file := writeServerConfig(t, dir, apiKey.Identity(), `version: v1
cache:
  expiry:
    any: 5m
    unused: 1m
    offline: 10m
log:
  audit: off
keystore:
  vault:
    endpoint: `+vault.URL()+`
    engine: kes-kv
    version: v2
    prefix: tenant-1
    approle:
      id: kes-role-id
      secret: kes-secret-id
      retry: 15s
    status:
      ping: 10s
`)

	lines, stderr := startCmd(t, "server", "--config", file)
	call := waitStoreServer(t, lines, kmsLine("Hashicorp Vault: "+vault.URL()), apiKey, stderr, nil).doRaw
	for _, name := range []string{"cached", "uncached"} {
		if code, body := call("POST", "/v1/key/create/"+name, ""); code != 200 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
	}
	code, body := call("POST", "/v1/key/generate/cached", "")
	if code != 200 {
		t.Fatalf("generate: %d %s", code, body)
	}
	var dek struct{ Ciphertext []byte }
	json.Unmarshal([]byte(body), &dek)
	decrypt := `{"ciphertext":"` + encodeB64(dek.Ciphertext) + `"}`

	// The record is in Vault, in upstream's layout: the data field is named
	// after the key.
	vault.Do(t, func(vc *vaultClient) error {
		s, err := vc.Logical().Read("kes-kv/data/tenant-1/cached")
		if err != nil || s == nil {
			return fmt.Errorf("read: %v %v", s, err)
		}
		if _, ok := s.Data["data"].(map[string]any)["cached"].(string); !ok {
			return fmt.Errorf("layout: %v", s.Data)
		}
		return nil
	})

	vault.Stop()
	for range 50 { // under load while Vault is down
		if code, body := call("POST", "/v1/key/decrypt/cached", decrypt); code != 200 {
			t.Fatalf("decrypt of a cached key with Vault down: %d %s", code, body)
		}
	}
	if code, body := call("GET", "/v1/key/describe/uncached", ""); code != 502 || !strings.Contains(body, "failed to read key") {
		t.Fatalf("uncached key with Vault down: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/ready", ""); code != 504 || !strings.Contains(body, "key store is not reachable") {
		t.Fatalf("ready with Vault down: %d %s", code, body)
	}
	code, body = call("GET", "/v1/status", "")
	if code != 200 || !strings.Contains(body, `"keystore_unreachable":true`) {
		t.Fatalf("status with Vault down: %d %s", code, body)
	}

	// A dev Vault forgets everything when it stops: set it up again.
	vault.Restart(t)
	setupVault()
	vaulttest.Eventually(t, 60*time.Second, "server works after Vault restart", func() error {
		if code, body := call("POST", "/v1/key/create/after-restart", ""); code != 200 && code != 400 {
			return fmt.Errorf("create: %d %s", code, body)
		}
		if code, body := call("GET", "/v1/ready", ""); code != 200 {
			return fmt.Errorf("ready: %d %s", code, body)
		}
		return nil
	})
	if code, body := call("POST", "/v1/key/decrypt/cached", decrypt); code != 200 {
		t.Fatalf("decrypt after restart: %d %s", code, body)
	}
}

type vaultClient = vaultapi.Client

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
