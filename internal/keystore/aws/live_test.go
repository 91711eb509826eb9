//go:build live

package aws_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/aws"
	"github.com/openkes/kes/internal/keystore/storetest"
)

// TestLive runs the conformance suite against a real AWS account (see
// docs/keystores/aws.md). The region must hold no secrets: the suite
// expects an empty store, and each subtest deletes what it created.
func TestLive(t *testing.T) {
	c := &aws.Config{
		Endpoint: os.Getenv("OPENKES_AWS_ENDPOINT"),
		Region:   os.Getenv("OPENKES_AWS_REGION"),
		KMSKey:   os.Getenv("OPENKES_AWS_KMSKEY"),
	}
	if c.Endpoint == "" || c.Region == "" {
		t.Fatal("set OPENKES_AWS_ENDPOINT and OPENKES_AWS_REGION (and AWS credentials) for the live test")
	}
	s := connect(t, c)
	if names, _, err := s.List(t.Context(), "", "", 0); err != nil || len(names) != 0 {
		t.Fatalf("the region must hold no secrets for the live test: found %d (%v)", len(names), err)
	}
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		s := connect(t, c)
		t.Cleanup(func() {
			// t.Context is done by now.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			names, _, err := s.List(ctx, "", "", 1<<20)
			if err != nil {
				t.Errorf("cleanup: %v", err)
			}
			for _, name := range names {
				if err := s.Delete(ctx, name); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		})
		return s
	}, storetest.Options{MaxValueSize: aws.MaxValueSize})
}
