package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/openkes/kes/internal/keystore"
)

// MarkerName is the store name of the record that marks a store as
// wrapped (docs/hsm.md). It starts with '-', so no client can create,
// read, describe or list it (API key names never start with '-', and
// listings drop every '-' name), and not with the tombstone prefix "-d",
// so soft deletion never parses, lists or purges it. Its bytes, lower-case
// letters and '-', are a subset of every tombstone name's, so every store
// that holds tombstones holds it.
const MarkerName = "-hsm"

// markerValue is what the marker wraps; the value carries no meaning.
var markerValue = []byte("openkes: the records of this store are wrapped by an HSM")

// ErrMarked is returned by [CheckMarker] for a store that holds the
// wrapped marker: a server without the hsm section must not serve it.
var ErrMarked = errors.New("the key store holds HSM-wrapped keys: configure the hsm section (docs/hsm.md)")

// Mark makes sure the store s, which [Wrap] returned, holds the marker,
// wrapped. An unwrapped marker (kes migrate from a wrapped store into an
// unwrapped one copies it unwrapped) is replaced by a wrapped one.
func Mark(ctx context.Context, s keystore.Store) error {
	w, ok := s.(interface{ wrapped() *Store })
	if !ok {
		return errors.New("hsm: mark the store: not a store of hsm.Wrap")
	}
	st := w.wrapped()
	for range 2 {
		err := st.Create(ctx, MarkerName, markerValue)
		if !errors.Is(err, keystore.ErrExists) {
			if err != nil {
				return fmt.Errorf("hsm: mark the store: %w", err)
			}
			return nil
		}
		v, err := st.inner.Get(ctx, MarkerName)
		if errors.Is(err, keystore.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("hsm: mark the store: %w", err)
		}
		if IsWrapped(v) {
			return nil
		}
		if err := st.inner.Delete(ctx, MarkerName); err != nil && !errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("hsm: mark the store: %w", err)
		}
	}
	return fmt.Errorf("hsm: mark the store: %w", keystore.ErrExists)
}

func (s *Store) wrapped() *Store { return s }

// CheckMarker returns [ErrMarked] if the store s, not wrapped, holds the
// wrapped marker, nil if it holds no marker or an unwrapped one, and the
// store's error if it cannot tell.
func CheckMarker(ctx context.Context, s keystore.Store) error {
	v, err := s.Get(ctx, MarkerName)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hsm: look for the marker: %w", err)
	}
	defer clear(v)
	if IsWrapped(v) {
		return ErrMarked
	}
	return nil
}
