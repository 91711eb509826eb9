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
		// "update" only for Replace (key rotation, an OpenKES
		// extension): upstream's documented policy lacks it.
		rules = fmt.Sprintf("path %q { capabilities = [\"create\", \"read\", \"update\"] }\n"+
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

// fixture is a K/V engine (and transit engine) with its policy and an
// AppRole for it. apply creates it, also again on a restarted server.
type fixture struct {
	n               int64
	version, prefix string
	transit         bool
	params          map[string]any
}

func (f *fixture) engine() string { return fmt.Sprintf("kv-%d", f.n) }
func (f *fixture) transitEngine() string {
	return fmt.Sprintf("transit-%d", f.n)
}
func (f *fixture) policy() string   { return fmt.Sprintf("kes-%d", f.n) }
func (f *fixture) roleID() string   { return fmt.Sprintf("role-id-%d", f.n) }
func (f *fixture) secretID() string { return fmt.Sprintf("secret-id-%d-do-not-log", f.n) }
func (f *fixture) mount() string    { return fmt.Sprintf("approle-%d", f.n) }

func (f *fixture) apply(t *testing.T, srv *vaulttest.Server) {
	t.Helper()
	srv.EnableKV(t, f.engine(), f.version)
	var te, tk string
	if f.transit {
		te, tk = f.transitEngine(), "kes-key"
		srv.EnableTransit(t, te, tk)
	}
	srv.WritePolicy(t, f.policy(), kvPolicy(f.engine(), f.version, f.prefix, te, tk))
	params := map[string]any{"token_policies": f.policy(), "token_ttl": "1h"}
	for k, v := range f.params {
		params[k] = v
	}
	srv.AppRole(t, f.mount(), "kes", f.roleID(), f.secretID(), params)
}

func (f *fixture) config(t *testing.T, endpoint string) *vault.Config {
	cfg := &vault.Config{
		Endpoint:      endpoint,
		Engine:        f.engine(),
		EngineVersion: f.version,
		Prefix:        f.prefix,
		AppRole:       &vault.AppRole{Engine: f.mount(), ID: f.roleID(), Secret: f.secretID()},
		Logger:        testLogger(t, nil),
	}
	if f.transit {
		cfg.Transit = &vault.Transit{Engine: f.transitEngine(), Key: "kes-key"}
	}
	return cfg
}

func newFixture(t *testing.T, srv *vaulttest.Server, version, prefix string, transit bool, roleParams map[string]any) *fixture {
	t.Helper()
	f := &fixture{n: mountSeq.Add(1), version: version, prefix: prefix, transit: transit, params: roleParams}
	f.apply(t, srv)
	return f
}

// setup creates a fixture and returns a store config for it.
func setup(t *testing.T, srv *vaulttest.Server, version, prefix string, transit bool, roleParams map[string]any) *vault.Config {
	t.Helper()
	return newFixture(t, srv, version, prefix, transit, roleParams).config(t, srv.URL())
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
