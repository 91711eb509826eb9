package vault_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

var mountSeq atomic.Int64

// kvPolicy is the policy config.md §9.2 documents for a K/V engine (with
// the prefix inserted), plus transit encrypt/decrypt if transitKey is set.
func kvPolicy(engine, version, prefix, transitEngine, transitKey string) string {
	p := engine
	if prefix != "" {
		p += "/" + prefix
	}
	var rules string
	if version == "v2" {
		md := engine + "/metadata"
		if prefix != "" {
			md += "/" + prefix
		}
		rules = fmt.Sprintf("path %q { capabilities = [\"create\", \"read\"] }\n"+
			"path %q { capabilities = [\"list\", \"delete\"] }\n"+
			"path %q { capabilities = [\"list\"] }\n",
			engine+"/data/"+trimSlash(prefix)+"*", md+"/*", md)
	} else {
		rules = fmt.Sprintf("path %q { capabilities = [\"create\", \"read\", \"delete\", \"list\"] }\n"+
			"path %q { capabilities = [\"list\"] }\n", p+"/*", p)
	}
	if transitKey != "" {
		rules += fmt.Sprintf("path %q { capabilities = [\"update\"] }\npath %q { capabilities = [\"update\"] }\n",
			transitEngine+"/encrypt/"+transitKey, transitEngine+"/decrypt/"+transitKey)
	}
	return rules
}

func trimSlash(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// setup mounts a fresh K/V engine (and transit engine if transit), writes
// its policy and an AppRole for it, and returns a store config.
func setup(t *testing.T, srv *vaulttest.Server, version, prefix string, transit bool, roleParams map[string]any) *vault.Config {
	t.Helper()
	n := mountSeq.Add(1)
	engine := fmt.Sprintf("kv-%d", n)
	srv.EnableKV(t, engine, version)
	cfg := &vault.Config{
		Endpoint:      srv.URL(),
		Engine:        engine,
		EngineVersion: version,
		Prefix:        prefix,
		Logger:        testLogger(t, nil),
	}
	var te, tk string
	if transit {
		te, tk = fmt.Sprintf("transit-%d", n), "kes-key"
		srv.EnableTransit(t, te, tk)
		cfg.Transit = &vault.Transit{Engine: te, Key: tk}
	}
	policy := fmt.Sprintf("kes-%d", n)
	srv.WritePolicy(t, policy, kvPolicy(engine, version, prefix, te, tk))
	params := map[string]any{"token_policies": policy, "token_ttl": "1h"}
	for k, v := range roleParams {
		params[k] = v
	}
	mount := fmt.Sprintf("approle-%d", n)
	roleID, secretID := fmt.Sprintf("role-id-%d", n), fmt.Sprintf("secret-id-%d-do-not-log", n)
	srv.AppRole(t, mount, "kes", roleID, secretID, params)
	cfg.AppRole = &vault.AppRole{Engine: mount, ID: roleID, Secret: secretID}
	return cfg
}

func connect(t *testing.T, cfg *vault.Config) *vault.Store {
	t.Helper()
	s, err := vault.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLogger logs to the test output and, if buf is not nil, to buf.
func testLogger(t *testing.T, buf *syncBuffer) *slog.Logger {
	var w = t.Output()
	if buf != nil {
		w = multiWriter{t.Output(), buf}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type multiWriter [2]interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	m[0].Write(p)
	return m[1].Write(p)
}
