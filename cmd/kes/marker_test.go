package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/mem"
)

// storeSection is a keystore section that connects to a given store.
type storeSection struct{ s keystore.Store }

func (c storeSection) Connect(context.Context, *slog.Logger) (keystore.Store, error) { return c.s, nil }
func (storeSection) Banner() string                                                  { return "test store" }
func (storeSection) HasSecrets() bool                                                { return false }

// unreachableGet is a store whose reads fail as unreachable.
type unreachableGet struct{ *mem.Store }

func (unreachableGet) Get(context.Context, string) ([]byte, error) {
	return nil, &keystore.UnreachableError{Err: errors.New("connection refused")}
}

// TestServerConnectorMarker: without the hsm section, the server's store
// is refused if it holds a wrapped marker, accepted with no marker or an
// unwrapped one (kes migrate into an unwrapped store copies it so), and
// accepted, with a warning in the error log, if it cannot be read at start
// (the behaviour before the marker: the server starts and reports the
// store unreachable).
func TestServerConnectorMarker(t *testing.T) {
	wrapped := hsm.EncodeRecord(make([]byte, 12), make([]byte, 32))
	for _, tt := range []struct {
		name    string
		store   keystore.Store
		marker  []byte // nil: none
		refused bool
		warning bool
	}{
		{name: "no marker", store: new(mem.Store)},
		{name: "unwrapped marker", store: new(mem.Store), marker: []byte("copied")},
		{name: "wrapped marker", store: new(mem.Store), marker: wrapped, refused: true},
		{name: "unreachable", store: unreachableGet{new(mem.Store)}, marker: wrapped, warning: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.marker != nil {
				if err := tt.store.Create(ctx, hsm.MarkerName, tt.marker); err != nil {
					t.Fatal(err)
				}
			}
			var log bytes.Buffer
			s, err := serverConnector(&config.File{KeyStore: storeSection{tt.store}})(ctx, slog.New(slog.NewTextHandler(&log, nil)))
			if tt.refused {
				if !errors.Is(err, hsm.ErrMarked) || err.Error() != "the key store holds HSM-wrapped keys: configure the hsm section (docs/hsm.md)" {
					t.Fatalf("connect = %v, want %v", err, hsm.ErrMarked)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect = %v, want the store", err)
			}
			defer s.Close()
			if got := strings.Contains(log.String(), "cannot check the key store for HSM-wrapped keys"); got != tt.warning {
				t.Errorf("error log %q: warning %v, want %v", log.String(), got, tt.warning)
			}
		})
	}
}
