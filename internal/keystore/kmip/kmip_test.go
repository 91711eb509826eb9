package kmip_test

import (
	"context"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/kmip"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/kmiptest"
)

// connect returns a store on srv with srv's client certificate.
func connect(t *testing.T, ctx context.Context, srv *kmiptest.Server) *kmip.Store {
	t.Helper()
	s, err := kmip.Connect(ctx, &kmip.Config{
		Endpoints: []string{srv.Addr},
		CertFile:  srv.Client.CertFile, KeyFile: srv.Client.KeyFile, CAPath: srv.CA.File,
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v\npykmip-server log:\n%s", err, srv.Log())
	}
	return s
}

// TestStore runs the conformance suite against a real pykmip-server. One
// server serves every subtest (a start costs about a second of Python);
// each subtest gets an empty store because the previous one's keys are
// deleted in its cleanup.
func TestStore(t *testing.T) {
	srv := kmiptest.Start(t)
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		s := connect(t, t.Context(), srv)
		t.Cleanup(func() { clear(t, srv) })
		return s
	}, storetest.Options{MaxValueSize: 64 << 10})
}

// clear deletes every key of srv.
func clear(t *testing.T, srv *kmiptest.Server) {
	ctx := context.WithoutCancel(t.Context())
	s := connect(t, ctx, srv)
	defer s.Close()
	names, _, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatalf("clear: %v", err)
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("clear: %v", err)
		}
	}
}
