//go:build live

package entrust_test

import (
	"context"
	"os"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/entrust"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real KeyControl vault
// (docs/keystores/entrust.md): go test -tags live -run TestLive
// ./internal/keystore/entrust. The box must hold no other secrets: every
// secret it lists is deleted after each subtest.
func TestLive(t *testing.T) {
	cfg := &entrust.Config{
		Endpoint: os.Getenv("KES_TEST_KEYCONTROL_ENDPOINT"),
		VaultID:  os.Getenv("KES_TEST_KEYCONTROL_VAULT_ID"),
		BoxID:    os.Getenv("KES_TEST_KEYCONTROL_BOX_ID"),
		Username: os.Getenv("KES_TEST_KEYCONTROL_USERNAME"),
		Password: os.Getenv("KES_TEST_KEYCONTROL_PASSWORD"),
		CAPath:   os.Getenv("KES_TEST_KEYCONTROL_CA"),
	}
	if cfg.Endpoint == "" || cfg.VaultID == "" || cfg.BoxID == "" || cfg.Username == "" || cfg.Password == "" {
		t.Fatal("set KES_TEST_KEYCONTROL_{ENDPOINT,VAULT_ID,BOX_ID,USERNAME,PASSWORD} (docs/keystores/entrust.md)")
	}
	storetest.Run(t, func(t *testing.T) keystore.Store {
		s, err := entrust.Connect(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		empty(t, s)
		// Runs after the suite's Close: the session token stays valid,
		// and a 401 still logs in again.
		t.Cleanup(func() { empty(t, s) })
		return s
	})
}

// empty deletes every secret the box lists.
func empty(t *testing.T, s *entrust.Store) {
	ctx := context.Background() // t.Context() has ended in a cleanup
	names, _, err := s.List(ctx, "", "", 1<<20)
	if err != nil {
		t.Errorf("empty the box: %v", err)
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("empty the box: %v", err)
		}
	}
}
