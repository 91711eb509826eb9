// Package tombstone implements soft deletion of keys on any key store
// without changing the store contract or the stored key record.
//
// A soft-deleted key is a copy of its opaque record under a tombstone name,
//
//	-d<name>-<deletion time>
//
// where the time is the Unix second of the deletion in seven base-36 digits
// (lower case, zero-padded: good until the year 4453). API key names never
// start with '-' (spec crypto.md §8), so no client can create, read or
// overwrite a tombstone, and every store accepts the name: it uses only
// letters, digits, '-' and the characters of the key name. The name comes
// first so that the tombstones of one key are one prefix listing; the time
// is in the name so that purging reads no record. Several tombstones of one
// name may exist (deleted, re-created, deleted again).
//
// Deleting is two store calls: create the tombstone, then delete the key.
// A crash between them leaves the live key and its tombstone: the key is
// not deleted yet, and deleting it again finishes the job (with a second
// tombstone of the same record, purged in time like the first). On a
// store that can rename ([keystore.Renamer]: the directory and memory
// stores, through the key cache) deleting is one call that moves the
// record to the tombstone name instead, without writing it again; a crash
// inside it leaves the same states. Restoring
// is the reverse: create the key from the tombstone, then delete the
// tombstone; a crash between them leaves a live key and a stale tombstone.
//
// The package imports only the key store contract.
package tombstone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/kes/internal/keystore"
)

// Prefix starts every tombstone name.
const Prefix = "-d"

// timeWidth is the number of base-36 digits of the deletion time.
const timeWidth = 7

// maxSkew bounds how many seconds a deletion moves its time forward when a
// tombstone of the same name and second holds another record (a key
// deleted, re-created and deleted again within a second).
const maxSkew = 8

// ErrNotDeleted is returned by [Restore] when the key has no tombstone (of
// the asked deletion time).
var ErrNotDeleted = errors.New("tombstone: no deleted key of this name")

// Store is what soft deletion needs of a key store: a [keystore.Store]
// whose Read returns the stored record, uncached. Errors are those of
// [keystore.Store].
type Store interface {
	Read(ctx context.Context, name string) ([]byte, error)
	Create(ctx context.Context, name string, value []byte) error
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error)
}

// Raw adapts a [keystore.Store], whose Get returns the record, to [Store].
// The result is a [keystore.Renamer] if s is one.
func Raw(s keystore.Store) Store {
	if r, ok := s.(keystore.Renamer); ok {
		return renamingRaw{raw{s}, r}
	}
	return raw{s}
}

type raw struct{ keystore.Store }

type renamingRaw struct {
	raw
	keystore.Renamer
}

func (r raw) Read(ctx context.Context, name string) ([]byte, error) { return r.Get(ctx, name) }

// Tombstone is a soft-deleted key.
type Tombstone struct {
	Name      string    // the store name: -d<Key>-<time>
	Key       string    // the name of the deleted key
	DeletedAt time.Time // UTC, whole seconds
}

// NameOf returns the tombstone name of key deleted at t (whole seconds).
// t must not be before 1970 nor after the year 4453.
func NameOf(key string, t time.Time) string {
	s := strconv.FormatInt(t.Unix(), 36)
	if len(s) < timeWidth {
		s = strings.Repeat("0", timeWidth-len(s)) + s
	}
	return Prefix + key + "-" + s
}

// Parse returns the tombstone that name denotes, and false if name is not
// a tombstone name.
func Parse(name string) (Tombstone, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	i := strings.LastIndexByte(rest, '-')
	if !ok || i <= 0 || len(rest)-i-1 != timeWidth {
		return Tombstone{}, false
	}
	digits := rest[i+1:]
	for j := 0; j < len(digits); j++ {
		if c := digits[j]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return Tombstone{}, false
		}
	}
	sec, err := strconv.ParseInt(digits, 36, 64)
	if err != nil {
		return Tombstone{}, false
	}
	return Tombstone{Name: name, Key: rest[:i], DeletedAt: time.Unix(sec, 0).UTC()}, true
}

// IsTombstone reports whether a store name is internal: no API key name
// starts with '-', so every such name belongs to the server.
func IsTombstone(name string) bool { return strings.HasPrefix(name, "-") }

// Delete soft-deletes key at now: it moves the record to a tombstone if s
// is a [keystore.Renamer] that supports it, else it copies the record to
// a tombstone and deletes the key. It returns an error matching
// keystore.ErrNotFound, and changes nothing, if the key does not exist.
// If the second step fails, the key is still live (with a tombstone) and
// the error is returned: calling Delete again finishes the deletion.
func Delete(ctx context.Context, s Store, key string, now time.Time) (Tombstone, error) {
	if r, ok := s.(keystore.Renamer); ok {
		ts, err := move(ctx, s, r, key, now)
		if !errors.Is(err, errors.ErrUnsupported) {
			return ts, err
		}
	}
	record, err := s.Read(ctx, key)
	if err != nil {
		return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
	}
	defer clear(record)
	ts, err := bury(ctx, s, key, record, now)
	if err != nil {
		return Tombstone{}, err
	}
	// A concurrent delete of the same key may have won: its tombstone or
	// ours holds the record, so the key is deleted either way.
	if err := s.Delete(ctx, key); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
	}
	return ts, nil
}

// move renames key to its tombstone name at now, or at one of the next
// seconds if that name holds another record. It returns the store's error
// matching errors.ErrUnsupported, having changed nothing, if the store
// cannot rename.
func move(ctx context.Context, s Store, r keystore.Renamer, key string, now time.Time) (Tombstone, error) {
	for skew := range maxSkew {
		at := now.Add(time.Duration(skew) * time.Second).Truncate(time.Second).UTC()
		name := NameOf(key, at)
		err := r.Rename(ctx, key, name)
		if err == nil {
			return Tombstone{Name: name, Key: key, DeletedAt: at}, nil
		}
		if errors.Is(err, errors.ErrUnsupported) {
			return Tombstone{}, err
		}
		if !errors.Is(err, keystore.ErrExists) {
			return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
		}
		// The same record under both names: a deletion that ended early
		// (a crash inside the rename, or a copy whose delete failed).
		same, err := sameRecord(ctx, s, key, name)
		if err != nil {
			return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
		}
		if same {
			if err := s.Delete(ctx, key); err != nil && !errors.Is(err, keystore.ErrNotFound) {
				return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
			}
			return Tombstone{Name: name, Key: key, DeletedAt: at}, nil
		}
	}
	return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, keystore.ErrExists)
}

// sameRecord reports whether the records stored under key and tombstone
// are equal. It returns an error matching keystore.ErrNotFound if key is
// missing; a missing tombstone is no error (purged meanwhile) but not the
// same.
func sameRecord(ctx context.Context, s Store, key, tombstone string) (bool, error) {
	record, err := s.Read(ctx, key)
	if err != nil {
		return false, err
	}
	defer clear(record)
	other, err := s.Read(ctx, tombstone)
	if errors.Is(err, keystore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer clear(other)
	return bytes.Equal(record, other), nil
}

// bury stores record under the tombstone name of key at now, or at one of
// the next seconds if that name holds another record.
func bury(ctx context.Context, s Store, key string, record []byte, now time.Time) (Tombstone, error) {
	for skew := range maxSkew {
		at := now.Add(time.Duration(skew) * time.Second).Truncate(time.Second).UTC()
		name := NameOf(key, at)
		err := s.Create(ctx, name, record)
		if err == nil {
			return Tombstone{Name: name, Key: key, DeletedAt: at}, nil
		}
		if !errors.Is(err, keystore.ErrExists) {
			return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
		}
		// The same record: a retry of a deletion that ended early.
		other, err := s.Read(ctx, name)
		if err == nil && bytes.Equal(other, record) {
			clear(other)
			return Tombstone{Name: name, Key: key, DeletedAt: at}, nil
		}
		clear(other)
		if err != nil && !errors.Is(err, keystore.ErrNotFound) {
			return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, err)
		}
	}
	return Tombstone{}, fmt.Errorf("tombstone: delete %q: %w", key, keystore.ErrExists)
}

// Find returns the tombstones of key, oldest first.
func Find(ctx context.Context, s Store, key string) ([]Tombstone, error) {
	var found []Tombstone
	err := scan(ctx, s, Prefix+key+"-", func(t Tombstone) bool {
		if t.Key == key {
			found = append(found, t)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(found, func(a, b Tombstone) int { return a.DeletedAt.Compare(b.DeletedAt) })
	return found, nil
}

// List calls yield with each tombstone whose key starts with prefix, in
// the order of their names, until yield returns false.
func List(ctx context.Context, s Store, prefix string, yield func(Tombstone) bool) error {
	return scan(ctx, s, Prefix+prefix, func(t Tombstone) bool { return !strings.HasPrefix(t.Key, prefix) || yield(t) })
}

// scan calls yield with each tombstone whose store name starts with
// storePrefix until yield returns false.
func scan(ctx context.Context, s Store, storePrefix string, yield func(Tombstone) bool) error {
	for cont := ""; ; {
		names, next, err := s.List(ctx, storePrefix, cont, keystore.ListPageSize)
		if err != nil {
			return fmt.Errorf("tombstone: list: %w", err)
		}
		for _, name := range names {
			if t, ok := Parse(name); ok && !yield(t) {
				return nil
			}
		}
		if next == "" || next == cont {
			return nil
		}
		cont = next
	}
}

// Restore makes the tombstone of key deleted at (the newest one if at is
// zero) the live key again and removes the tombstone. It returns an error
// matching ErrNotDeleted if there is no such tombstone and one matching
// keystore.ErrExists, changing nothing, if key is live.
func Restore(ctx context.Context, s Store, key string, at time.Time) (Tombstone, error) {
	found, err := Find(ctx, s, key)
	if err != nil {
		return Tombstone{}, err
	}
	if !at.IsZero() {
		found = slices.DeleteFunc(found, func(t Tombstone) bool { return !t.DeletedAt.Equal(at.Truncate(time.Second)) })
	}
	if len(found) == 0 {
		return Tombstone{}, fmt.Errorf("tombstone: restore %q: %w", key, ErrNotDeleted)
	}
	t := found[len(found)-1]
	record, err := s.Read(ctx, t.Name)
	if errors.Is(err, keystore.ErrNotFound) { // restored or purged meanwhile
		err = ErrNotDeleted
	}
	if err != nil {
		return Tombstone{}, fmt.Errorf("tombstone: restore %q: %w", key, err)
	}
	defer clear(record)
	if err := s.Create(ctx, key, record); err != nil {
		return Tombstone{}, fmt.Errorf("tombstone: restore %q: %w", key, err)
	}
	if err := s.Delete(ctx, t.Name); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		// The key is live again; the stale tombstone is purged in time.
		return t, fmt.Errorf("tombstone: restore %q: remove tombstone: %w", key, err)
	}
	return t, nil
}

// Erase deletes every tombstone of key and returns them.
func Erase(ctx context.Context, s Store, key string) ([]Tombstone, error) {
	found, err := Find(ctx, s, key)
	if err != nil {
		return nil, err
	}
	for i, t := range found {
		if err := s.Delete(ctx, t.Name); err != nil && !errors.Is(err, keystore.ErrNotFound) {
			return found[:i], fmt.Errorf("tombstone: erase %q: %w", key, err)
		}
	}
	return found, nil
}

// Purge is one bounded round of purging: it looks at up to max tombstone
// names from the first one >= after and deletes those deleted before
// cutoff. It returns the purged tombstones and where the next round goes
// on ("" once it reached the last tombstone). Rounds on several servers at
// once are safe: a tombstone another server purged first is skipped (on
// stores where deleting a missing name fails with keystore.ErrNotFound;
// where it succeeds, as on Vault, both servers report it).
func Purge(ctx context.Context, s Store, cutoff time.Time, after string, max int) (purged []Tombstone, next string, err error) {
	if max <= 0 {
		max = keystore.ListPageSize
	}
	seen, cont := 0, after
	for seen < max {
		names, more, err := s.List(ctx, Prefix, cont, min(max-seen, keystore.ListPageSize))
		if err != nil {
			return purged, cont, fmt.Errorf("tombstone: purge: %w", err)
		}
		seen += len(names)
		for _, name := range names {
			t, ok := Parse(name)
			if !ok || !t.DeletedAt.Before(cutoff) {
				continue
			}
			err := s.Delete(ctx, name)
			if errors.Is(err, keystore.ErrNotFound) {
				continue
			}
			if err != nil {
				return purged, name, fmt.Errorf("tombstone: purge: %w", err)
			}
			purged = append(purged, t)
		}
		if more == "" || more == cont || len(names) == 0 {
			return purged, "", nil
		}
		cont = more
	}
	return purged, cont, nil
}
