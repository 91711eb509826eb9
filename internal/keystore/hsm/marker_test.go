//go:build cgo

package hsm_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/tombstone"
	"github.com/openkes/kes/internal/names"
)

// TestMarker: Mark stores the marker wrapped (and is idempotent), and
// CheckMarker on the same store without the layer finds it; a store
// without a marker, or with an unwrapped copy of it, passes, and Mark
// wraps such a copy.
func TestMarker(t *testing.T) {
	tok := newToken(t)
	dir := t.TempDir()
	ctx := t.Context()

	plain := newFS(t, dir)
	defer plain.Close()
	if err := hsm.CheckMarker(ctx, plain); err != nil {
		t.Fatalf("CheckMarker on an empty store: %v, want nil", err)
	}
	if err := hsm.Mark(ctx, plain); err == nil {
		t.Fatal("Mark on a store that Wrap did not return succeeded")
	}

	s := wrap(t, newFS(t, dir), config(tok))
	for range 2 {
		if err := hsm.Mark(ctx, s); err != nil {
			t.Fatalf("Mark: %v", err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, hsm.MarkerName))
	if err != nil || !hsm.IsWrapped(raw) {
		t.Fatalf("the marker file: %.20q, %v; want a wrapped record", raw, err)
	}
	if err := hsm.CheckMarker(ctx, plain); !errors.Is(err, hsm.ErrMarked) {
		t.Fatalf("CheckMarker on the marked store: %v, want ErrMarked", err)
	}

	// kes migrate from a wrapped store into an unwrapped one copies the
	// marker unwrapped: that store is no wrapped store.
	if err := plain.Delete(ctx, hsm.MarkerName); err != nil {
		t.Fatal(err)
	}
	if err := plain.Create(ctx, hsm.MarkerName, []byte("copied")); err != nil {
		t.Fatal(err)
	}
	if err := hsm.CheckMarker(ctx, plain); err != nil {
		t.Fatalf("CheckMarker with an unwrapped marker: %v, want nil", err)
	}
	if err := hsm.Mark(ctx, s); err != nil {
		t.Fatalf("Mark over an unwrapped marker: %v", err)
	}
	if err := hsm.CheckMarker(ctx, plain); !errors.Is(err, hsm.ErrMarked) {
		t.Fatalf("CheckMarker after Mark replaced the unwrapped marker: %v, want ErrMarked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMarkerNotATombstone: the marker name is no API key name and no
// tombstone name, so soft deletion never lists, restores or purges it.
func TestMarkerNotATombstone(t *testing.T) {
	if names.Valid(hsm.MarkerName) {
		t.Fatalf("%q is a valid API key name", hsm.MarkerName)
	}
	if !tombstone.IsTombstone(hsm.MarkerName) {
		t.Fatalf("%q is not an internal name: listings would show it", hsm.MarkerName)
	}
	if ts, ok := tombstone.Parse(hsm.MarkerName); ok {
		t.Fatalf("tombstone.Parse(%q) = %+v", hsm.MarkerName, ts)
	}
	tok := newToken(t)
	s := wrap(t, newFS(t, t.TempDir()), config(tok))
	defer s.Close()
	ctx := t.Context()
	if err := hsm.Mark(ctx, s); err != nil {
		t.Fatal(err)
	}
	store := tombstone.Raw(s)
	if err := store.Create(ctx, "k", []byte("record")); err != nil {
		t.Fatal(err)
	}
	if _, err := tombstone.Delete(ctx, store, "k", time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	var listed []string
	if err := tombstone.List(ctx, store, "", func(ts tombstone.Tombstone) bool {
		listed = append(listed, ts.Key)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "k" {
		t.Fatalf("tombstone.List = %q, want [k]", listed)
	}
	purged, _, err := tombstone.Purge(ctx, store, time.Now().Add(time.Hour), "", 0)
	if err != nil || len(purged) != 1 || purged[0].Key != "k" {
		t.Fatalf("tombstone.Purge = %+v, %v; want the tombstone of k", purged, err)
	}
	if _, err := s.Get(ctx, hsm.MarkerName); err != nil {
		t.Fatalf("the marker after a purge: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("k after the purge: %v, want ErrNotFound", err)
	}
}
