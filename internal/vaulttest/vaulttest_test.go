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

func TestCluster(t *testing.T) {
	c := vaulttest.StartCluster(t, 3)
	c.EnableKV(t, "kv", "v2")
	leader := c.Leader(t)
	if _, err := c.Client(t, leader).Logical().Write("kv/data/a", map[string]any{"data": map[string]any{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	// Every node answers, standbys by forwarding to the leader.
	for _, n := range c.Nodes {
		sec, err := c.Client(t, n).Logical().Read("kv/data/a")
		if err != nil || sec == nil {
			t.Fatalf("%s: read = %v, %v", n.ID, sec, err)
		}
	}
	leader.Kill()
	next := c.Leader(t)
	if next == leader {
		t.Fatal("the killed node is still the leader")
	}
	if _, err := c.Client(t, next).Logical().Write("kv/data/b", map[string]any{"data": map[string]any{"b": "c"}}); err != nil {
		t.Fatalf("write after leader change: %v", err)
	}
}
