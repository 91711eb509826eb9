// Package keystore defines the contract between the KES server and the
// places master keys are kept (Vault, cloud secret managers, a directory,
// memory).
//
// A store keeps an opaque byte string per key name: the stored key record of
// spec crypto.md §2. It never parses it, so records written by upstream KES
// are served unchanged and records we write are readable by upstream.
//
// Stores know nothing of HTTP. A backend (one folder below this one) imports
// this package, the SDK's error values and its vendor SDK, nothing else.
package keystore

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"
)

// Store is a key store. Implementations are safe for concurrent use.
//
// Errors: Create returns an error that matches keystore.ErrExists (errors.Is)
// when the name is taken; Get and Delete return one matching
// keystore.ErrNotFound when it is not, except for stores that, as upstream,
// treat deleting a missing key as success (Vault, Azure, KeySecure). Any error
// that means the store could not be reached wraps an [*UnreachableError].
// Names the store cannot hold safely (a path separator for a directory) are
// rejected with an error, never mapped to another name.
type Store interface {
	// Status probes the store and returns its latency.
	Status(ctx context.Context) (State, error)

	// Create stores value under name if no value is stored under it yet.
	Create(ctx context.Context, name string, value []byte) error

	// Get returns the value stored under name.
	Get(ctx context.Context, name string) ([]byte, error)

	// Delete removes the value stored under name.
	Delete(ctx context.Context, name string) error

	// List returns up to n names that start with prefix, sorted, beginning
	// at the first name that is >= continueAt (if not empty). If more names
	// match, next is the first name not returned; else next is empty.
	// n <= 0 means a store-chosen page size.
	List(ctx context.Context, prefix, continueAt string, n int) (names []string, next string, err error)

	io.Closer
}

// Replacer is the optional capability of a [Store] to replace a value
// atomically, without a window in which the name is missing or holds a
// value that was not asked for. Callers find it by type assertion:
//
//	if r, ok := store.(keystore.Replacer); ok { ... }
//
// A store implements it only if it can compare and swap; it is safe for
// concurrent use like the Store.
type Replacer interface {
	// Replace stores new under name if the value stored under name is
	// old (compare-and-swap): of concurrent Replace calls from the same
	// old value, exactly one succeeds. It returns an error matching
	// ErrNotFound if nothing is stored under name and one matching
	// ErrChanged if the stored value is not old; the stored value is then
	// unchanged.
	Replace(ctx context.Context, name string, old, new []byte) error
}

// Overwriter is the optional capability of a [Replacer] whose Replace
// leaves exactly what a Create of the new value would have left, so that
// every reader of the store, upstream KES included, reads the new value
// (fs, memory). Vault K/V v2 is a Replacer but not an Overwriter: its
// Replace adds a secret version that upstream, which reads version 1,
// never sees. `kes migrate --force` overwrites a key atomically only on an
// Overwriter; elsewhere it deletes and creates, as upstream does.
type Overwriter interface {
	Replacer

	// ReplacesInPlace marks the capability; it does nothing.
	ReplacesInPlace()
}

// Renamer is the optional capability of a [Store] to move a value to
// another name in one step, without writing the value again: soft
// deletion (internal/keystore/tombstone) moves a deleted key to its
// tombstone name with it. Callers find it by type assertion and fall back
// on copy and delete when it is missing or Rename returns an error
// matching errors.ErrUnsupported.
//
// Only a store whose stored value does not depend on its name may
// implement it: a wrapper that binds the name into the value (the HSM
// layer binds it into each wrapped record's additional data) must not,
// and no wrapper may gain it by embedding the store below. A wrapper that
// passes it through (the key cache) returns errors.ErrUnsupported when
// the store below is no Renamer.
type Renamer interface {
	// Rename moves the value stored under from to the name to, which
	// must be free. It returns an error matching ErrNotFound if nothing
	// is stored under from and one matching ErrExists if to is taken;
	// nothing is changed then. If Rename returns any other error, or the
	// process dies during it, the value is under from, under to, or
	// under both, never lost and never half-written.
	Rename(ctx context.Context, from, to string) error
}

// Errors a [Store] returns, wrapped with the store and operation. The API
// maps them to upstream's statuses and texts in one place.
var (
	// ErrNotFound means no value is stored under the name.
	ErrNotFound = errors.New("keystore: key does not exist")

	// ErrExists means a value is already stored under the name.
	ErrExists = errors.New("keystore: key already exists")

	// ErrChanged means [Replacer.Replace] found another value than the one
	// it was to replace: someone changed the key since it was read.
	ErrChanged = errors.New("keystore: key changed since it was read")
)

// State is the result of a successful [Store.Status] probe.
type State struct {
	Latency time.Duration
}

// UnreachableError reports that a store could not be reached (network
// failure, sealed Vault, missing directory). Readiness probes answer 504 for
// it and 502 for any other error.
type UnreachableError struct {
	Err error
}

func (e *UnreachableError) Error() string { return "keystore: unreachable: " + e.Err.Error() }

func (e *UnreachableError) Unwrap() error { return e.Err }

// ErrOffline is wrapped (inside an [*UnreachableError]) by the errors of
// calls that a cache in front of a store refused without calling it,
// because the store is known to be offline: the fail-fast answer.
var ErrOffline = errors.New("key store is offline")

// IsUnreachable reports whether err wraps an [*UnreachableError].
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// ListPageSize is the page size List uses when n <= 0, as upstream.
const ListPageSize = 1024

// Page answers a List call from all names a store holds: it keeps those
// that start with prefix and are >= continueAt, sorts them and returns at
// most n (ListPageSize if n <= 0), with the first name not returned as next.
// It returns nil when nothing matches. It reorders and reuses names.
func Page(names []string, prefix, continueAt string, n int) (page []string, next string) {
	page = names[:0]
	for _, name := range names {
		if strings.HasPrefix(name, prefix) && name >= continueAt {
			page = append(page, name)
		}
	}
	if len(page) == 0 {
		return nil, ""
	}
	slices.Sort(page)
	if n <= 0 {
		n = ListPageSize
	}
	if len(page) > n {
		return page[:n:n], page[n]
	}
	return page, ""
}
