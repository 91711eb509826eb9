//go:build live

package gemalto_test

import (
	"context"
	"os"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/gemalto"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real CipherTrust Manager
// (docs/keystores/gemalto.md): go test -tags live -run TestLive
// ./internal/keystore/gemalto. The user must see no other vault secrets:
// every secret it lists is deleted after each subtest.
func TestLive(t *testing.T) {
	cfg := &gemalto.Config{
		Endpoint: os.Getenv("KES_TEST_CIPHERTRUST_ENDPOINT"),
		Token:    os.Getenv("KES_TEST_CIPHERTRUST_REFRESH_TOKEN"),
		Domain:   os.Getenv("KES_TEST_CIPHERTRUST_DOMAIN"),
		CAPath:   os.Getenv("KES_TEST_CIPHERTRUST_CA"),
	}
	if cfg.Endpoint == "" || cfg.Token == "" {
		t.Fatal("set KES_TEST_CIPHERTRUST_ENDPOINT and KES_TEST_CIPHERTRUST_REFRESH_TOKEN (docs/keystores/gemalto.md)")
	}
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		s, err := gemalto.Connect(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		empty(t, s)
		// Runs after the suite's Close: the JWT stays valid, and a 401
		// still logs in again.
		t.Cleanup(func() { empty(t, s) })
		return s
	}, storetest.Options{DeleteMissingOK: true})
}

// empty deletes every secret the user lists.
func empty(t *testing.T, s *gemalto.Store) {
	ctx := context.Background() // t.Context() has ended in a cleanup
	names, _, err := s.List(ctx, "", "", 1<<20)
	if err != nil {
		t.Errorf("empty the vault: %v", err)
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("empty the vault: %v", err)
		}
	}
}
