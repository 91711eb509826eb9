//go:build live

package fortanix_test

import (
	"context"
	"os"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fortanix"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real Fortanix DSM account
// (docs/keystores/fortanix.md): go test -tags live -run TestLive
// ./internal/keystore/fortanix. The app must see no other objects: every
// object it lists is deleted after each subtest.
func TestLive(t *testing.T) {
	cfg := &fortanix.Config{
		Endpoint: os.Getenv("KES_TEST_FORTANIX_ENDPOINT"),
		APIKey:   os.Getenv("KES_TEST_FORTANIX_API_KEY"),
		GroupID:  os.Getenv("KES_TEST_FORTANIX_GROUP_ID"),
		CAPath:   os.Getenv("KES_TEST_FORTANIX_CA"),
	}
	if cfg.Endpoint == "" || cfg.APIKey == "" {
		t.Fatal("set KES_TEST_FORTANIX_ENDPOINT and KES_TEST_FORTANIX_API_KEY (docs/keystores/fortanix.md)")
	}
	storetest.Run(t, func(t *testing.T) keystore.Store {
		s, err := fortanix.Connect(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		empty(t, s)
		t.Cleanup(func() { empty(t, s) }) // runs after the suite's Close, which only drops idle connections
		return s
	})
}

// empty deletes every object the app lists.
func empty(t *testing.T, s *fortanix.Store) {
	ctx := context.Background() // t.Context() has ended in a cleanup
	names, _, err := s.List(ctx, "", "", 1<<20)
	if err != nil {
		t.Errorf("empty the account: %v", err)
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("empty the account: %v", err)
		}
	}
}
