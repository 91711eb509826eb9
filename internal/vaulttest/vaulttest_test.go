package vaulttest_test

import (
	"testing"

	"github.com/openkes/kes/internal/vaulttest"
)

func TestStartRestart(t *testing.T) {
	srv := vaulttest.Start(t, &vaulttest.Options{TLS: vaulttest.NewTLSFiles(t)})
	srv.EnableKV(t, "kv", "v1")
	c := srv.Client(t)
	if _, err := c.Logical().Write("kv/a", map[string]any{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	// A restarted dev server has lost its mounts but knows the root token.
	if sec, err := c.Logical().Read("kv/a"); err != nil || sec != nil {
		t.Fatalf("Read(kv/a) after restart = %v, %v; want nothing (no kv mount)", sec, err)
	}
	srv.EnableKV(t, "kv", "v2")
	if _, err := c.Logical().Write("kv/data/a", map[string]any{"data": map[string]any{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
}
