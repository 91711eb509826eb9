package api

import (
	"io"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
)

// TestMaxRequestDuration: the server keeps a replaced key store open this
// long after a reload, so it must follow the longest configured timeout.
func TestMaxRequestDuration(t *testing.T) {
	authorizer, _ := auth.New(kes.Identity("admin"), nil, time.Now())
	keys := cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	defer keys.Close()
	s, err := New(&Config{
		Keys: keys, Auth: authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, nil, nil), AuditLog: log.NewAuditLog(io.Discard, nil, nil),
		Metrics: metrics.New(time.Now()),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.MaxRequestDuration(), defaultTimeout+writeGrace; got != want {
		t.Fatalf("default routes: %v, want %v", got, want)
	}
	s.Update(keys, authorizer, map[string]RouteConfig{"/v1/key/list/": {Timeout: 3 * time.Minute}}, Deletion{})
	if got, want := s.MaxRequestDuration(), 3*time.Minute+writeGrace; got != want {
		t.Fatalf("with a 3m route: %v, want %v", got, want)
	}
}
