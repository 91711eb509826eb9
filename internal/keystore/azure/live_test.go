//go:build live

package azure

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real Azure Key Vault:
//
//	KES_AZURE_ENDPOINT=https://<vault>.vault.azure.net \
//	KES_AZURE_TENANT_ID=… KES_AZURE_CLIENT_ID=… KES_AZURE_CLIENT_SECRET=… \
//	go test -tags live -run TestLive -timeout 30m ./internal/keystore/azure/
//
// Without the three credential variables, Azure's DefaultAzureCredential
// is used (environment, workload identity, managed identity, Azure CLI).
// The vault must be dedicated to the test and empty: every subtest starts
// by checking that it is, and purges what it created.
func TestLive(t *testing.T) {
	c := &Config{
		Endpoint: os.Getenv("KES_AZURE_ENDPOINT"),
		Credentials: Credentials{
			TenantID:     os.Getenv("KES_AZURE_TENANT_ID"),
			ClientID:     os.Getenv("KES_AZURE_CLIENT_ID"),
			ClientSecret: os.Getenv("KES_AZURE_CLIENT_SECRET"),
		},
	}
	if c.Endpoint == "" {
		t.Fatal("KES_AZURE_ENDPOINT is not set; see docs/keystores/azure.md")
	}
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		s, err := Connect(t.Context(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		names, _, err := s.List(t.Context(), "", "", 0)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(names) != 0 {
			t.Fatalf("the vault holds %d secrets; the live test needs a dedicated, empty vault", len(names))
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cleanup, err := Connect(ctx, c, nil)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			names, _, err := cleanup.List(ctx, "", "", 0)
			if err != nil {
				t.Errorf("cleanup: %v", err)
			}
			for _, name := range names {
				if err := cleanup.Delete(ctx, name); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		})
		return s
	}, storetest.Options{DeleteMissingOK: true, MaxValueSize: 18 << 10, Concurrency: 4})
}
