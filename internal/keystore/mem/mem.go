// Package mem implements an in-memory [keystore.Store], the store of
// `kes server --dev` (spec config.md §9.9). Its content is lost when the
// process exits.
//
// It imports only the keystore contract and the SDK's error values.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/openkes/kes/internal/keystore"
)

// Latency is the latency [Store.Status] reports, as upstream's dev mode.
const Latency = time.Millisecond

// Store is an in-memory key store. The zero value is an empty store ready to
// use. A Store is safe for concurrent use and must not be copied after first
// use.
//
// Values are copied in and out: the caller keeps ownership of the slice it
// passes to [Store.Create] and receives its own copy from [Store.Get].
type Store struct {
	mu   sync.RWMutex
	keys map[string][]byte
}

var (
	_ keystore.Store    = (*Store)(nil)
	_ keystore.Replacer = (*Store)(nil)
)

// Status reports a fixed latency of [Latency]. It fails only if ctx is done.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	if err := ctx.Err(); err != nil {
		return keystore.State{}, err
	}
	return keystore.State{Latency: Latency}, nil
}

// Create stores a copy of value under name. It returns an error matching
// keystore.ErrExists if name is taken.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[name]; ok {
		return fmt.Errorf("mem: create %q: %w", name, keystore.ErrExists)
	}
	if s.keys == nil {
		s.keys = make(map[string][]byte)
	}
	s.keys[name] = append([]byte{}, value...) // non-nil even when empty
	return nil
}

// Get returns a copy of the value stored under name, or an error matching
// keystore.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	v, ok := s.keys[name]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("mem: get %q: %w", name, keystore.ErrNotFound)
	}
	return slices.Clone(v), nil
}

// Delete removes name, or returns an error matching keystore.ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[name]; !ok {
		return fmt.Errorf("mem: delete %q: %w", name, keystore.ErrNotFound)
	}
	delete(s.keys, name)
	return nil
}

// ReplacesInPlace implements [keystore.Overwriter]: a replaced value is
// stored as a created one is, for every reader.
func (s *Store) ReplacesInPlace() {}

var _ keystore.Overwriter = (*Store)(nil)

// Replace stores a copy of new under name if the value stored under name is
// old; see [keystore.Replacer].
func (s *Store) Replace(ctx context.Context, name string, old, new []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.keys[name]
	if !ok {
		return fmt.Errorf("mem: replace %q: %w", name, keystore.ErrNotFound)
	}
	if !bytes.Equal(v, old) {
		return fmt.Errorf("mem: replace %q: %w", name, keystore.ErrChanged)
	}
	s.keys[name] = append([]byte{}, new...)
	return nil
}

var _ keystore.Renamer = (*Store)(nil)

// Rename moves the value stored under from to the free name to; see
// [keystore.Renamer].
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.keys[from]
	if !ok {
		return fmt.Errorf("mem: rename %q: %w", from, keystore.ErrNotFound)
	}
	if _, ok := s.keys[to]; ok {
		return fmt.Errorf("mem: rename %q to %q: %w", from, to, keystore.ErrExists)
	}
	s.keys[to] = v
	delete(s.keys, from)
	return nil
}

// List returns up to n names that start with prefix, sorted, beginning at
// the first name >= continueAt; see [keystore.Store]. n <= 0 means
// [keystore.ListPageSize]. The returned slice belongs to the caller.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	s.mu.RLock()
	names := make([]string, 0, len(s.keys))
	for name := range s.keys {
		names = append(names, name)
	}
	s.mu.RUnlock()
	page, next := keystore.Page(names, prefix, continueAt, n)
	return page, next, nil
}

// Close does nothing: the store stays usable.
func (s *Store) Close() error { return nil }
