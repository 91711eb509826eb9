package api_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

// vaultStores returns a function that connects a new store to the K/V
// engine of the given version on srv, for serverOptions.store.
func vaultStores(t *testing.T, srv *vaulttest.Server, engine, version string) func(string) keystore.Store {
	t.Helper()
	srv.EnableKV(t, engine, version)
	rules := `path "` + engine + `/*" { capabilities = ["create", "read", "update", "delete", "list"] }` + "\n" +
		`path "` + engine + `" { capabilities = ["list"] }`
	srv.WritePolicy(t, "kes-"+engine, rules)
	mount := "approle-" + engine
	srv.AppRole(t, mount, "kes", "role-"+engine, "secret-id-"+engine+"-do-not-log",
		map[string]any{"token_policies": "kes-" + engine, "token_ttl": "1h"})
	return func(string) keystore.Store {
		s, err := vault.Connect(t.Context(), &vault.Config{
			Endpoint:      srv.URL(),
			Engine:        engine,
			EngineVersion: version,
			AppRole:       &vault.AppRole{Engine: mount, ID: "role-" + engine, Secret: "secret-id-" + engine + "-do-not-log"},
			Logger:        slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestRotateVault: three servers on one real Vault K/V v2 engine rotate a
// key under mixed load without a failed decrypt (check-and-set); on K/V
// v1, which has none, rotation answers 501 and changes nothing.
func TestRotateVault(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	v2 := vaultStores(t, srv, "kv2", "v2")
	a := startServer(t, serverOptions{store: v2})
	b := startServer(t, serverOptions{store: v2})
	c := startServer(t, serverOptions{store: v2})
	rotateUnderLoad(t, []*kes.Client{adminClient(t, a), adminClient(t, b), adminClient(t, c)})

	v1 := startServer(t, serverOptions{store: vaultStores(t, srv, "kv1", "v1")})
	cl := adminClient(t, v1)
	ctx := t.Context()
	if err := cl.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	dek, err := cl.GenerateKey(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	var e *kes.Error
	if _, err := cl.RotateKey(ctx, "k"); !errors.Is(err, kes.ErrRotateUnsupported) || !errors.As(err, &e) || e.Status != 501 {
		t.Fatalf("rotate on K/V v1: %v", err)
	}
	if v, err := cl.ListKeyVersions(ctx, "k"); err != nil || v.Current != 1 || len(v.Versions) != 1 {
		t.Fatalf("versions after a refused rotation: %+v, %v", v, err)
	}
	if _, err := cl.Decrypt(ctx, "k", dek.Ciphertext, nil); err != nil {
		t.Fatal(err)
	}
}
