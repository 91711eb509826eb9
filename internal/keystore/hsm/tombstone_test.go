//go:build cgo

package hsm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

// TestTombstoneCopies: the HSM layer binds a record's name into its
// wrapping, so it must not offer keystore.Renamer even over a store that
// renames (fs): a moved record would not unwrap under its new name. Soft
// deletion through the key cache, as the server calls it, then copies
// the record (unwrapped and wrapped again for the tombstone name), and
// both the tombstone and the restored key read back.
func TestTombstoneCopies(t *testing.T) {
	tok := newToken(t)
	inner := newFS(t, t.TempDir())
	if _, ok := keystore.Store(inner).(keystore.Renamer); !ok {
		t.Fatal("the fs store is no keystore.Renamer: this test proves nothing")
	}
	s := wrap(t, inner, config(tok))
	if _, ok := s.(keystore.Renamer); ok {
		t.Fatal("the HSM layer offers keystore.Renamer")
	}
	c := cache.New(s, func(_ string, v []byte) ([]byte, error) { return v, nil }, cache.Config{})
	defer c.Close() // closes s and inner
	ctx := t.Context()
	if err := c.Create(ctx, "k", []byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, "k", "k2"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Rename through the cache: %v, want errors.ErrUnsupported", err)
	}
	at := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	ts, err := tombstone.Delete(ctx, c, "k", at)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, ts.Name); err != nil || string(got) != "record" {
		t.Fatalf("tombstone through the HSM layer: %q, %v; want the record", got, err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after the delete: %v, want ErrNotFound", err)
	}
	if _, err := tombstone.Restore(ctx, c, "k", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "record" {
		t.Fatalf("restored key: %q, %v; want the record", got, err)
	}
}
