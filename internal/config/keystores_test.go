package config_test

import (
	"testing"

	"github.com/openkes/kes/internal/config"
)

// The keystore section as a whole: exactly one store of the table, no
// store upstream removed. Each store's own errors are pinned beside the
// table (internal/keystore/stores).

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
	})
}
