//go:build live

package gcp_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/gcp"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real Secret Manager:
//
//	OPENKES_GCP_PROJECT=my-empty-test-project \
//	GOOGLE_APPLICATION_CREDENTIALS=key.json \
//	go test -tags live -run TestLive ./internal/keystore/gcp
//
// The project must hold no secrets: the suite lists all of them, and it
// deletes every secret it finds after each subtest. Instead of Application
// Default Credentials, OPENKES_GCP_CLIENT_EMAIL, OPENKES_GCP_CLIENT_ID,
// OPENKES_GCP_PRIVATE_KEY_ID and OPENKES_GCP_PRIVATE_KEY give a service
// account as a config file does. OPENKES_GCP_ENDPOINT overrides the endpoint.
func TestLive(t *testing.T) {
	project := os.Getenv("OPENKES_GCP_PROJECT")
	if project == "" {
		t.Fatal("OPENKES_GCP_PROJECT is not set; hint: see docs/keystores/gcp.md, \"Live test\"")
	}
	c := &gcp.Config{
		ProjectID: project,
		Endpoint:  os.Getenv("OPENKES_GCP_ENDPOINT"),
		Credentials: gcp.Credentials{
			ClientEmail:  os.Getenv("OPENKES_GCP_CLIENT_EMAIL"),
			ClientID:     os.Getenv("OPENKES_GCP_CLIENT_ID"),
			PrivateKeyID: os.Getenv("OPENKES_GCP_PRIVATE_KEY_ID"),
			PrivateKey:   os.Getenv("OPENKES_GCP_PRIVATE_KEY"),
		},
	}
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		s, err := gcp.Connect(t.Context(), c, nil)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if names, _, err := s.List(t.Context(), "", "", 0); err != nil || len(names) != 0 {
			t.Fatalf("the project must be empty: List = %d names, %v", len(names), err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := gcp.Connect(ctx, c, nil)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			defer s.Close()
			for {
				names, _, err := s.List(ctx, "", "", 0)
				if err != nil || len(names) == 0 {
					if err != nil {
						t.Errorf("cleanup: %v", err)
					}
					return
				}
				for _, name := range names {
					if err := s.Delete(ctx, name); err != nil {
						t.Errorf("cleanup: %v", err)
						return
					}
				}
			}
		})
		return s
	}, storetest.Options{MaxValueSize: 64 << 10})
}
