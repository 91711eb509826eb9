package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/tombstone"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/names"
)

// Deletion configures how keys are deleted: soft deletion, protected keys
// (docs/key-deletion.md). The zero value deletes keys at once and
// protects none: upstream KES's behaviour.
type Deletion struct {
	// Retention is how long a deleted key stays recoverable: the delete
	// route copies the key to a tombstone (internal/keystore/tombstone)
	// that [Server.Purge] deletes once Retention has passed. Zero or
	// negative deletes keys at once, as upstream; tombstones left from
	// before are then kept until restored or purged by the purge route.
	Retention time.Duration

	// Protect lists patterns (a key name, or a prefix ending in '*') of
	// keys that the delete and purge routes refuse to delete. Nil means
	// none.
	Protect []string
}

// protects reports whether name matches a Protect pattern.
func (d *Deletion) protects(name string) bool {
	for _, p := range d.Protect {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// purgeAt is when a tombstone deleted at t is purged; zero if never by
// itself.
func (d *Deletion) purgeAt(t time.Time) time.Time {
	if d.Retention <= 0 {
		return time.Time{}
	}
	return t.Add(d.Retention)
}

// errors of the soft-deletion routes that are not SDK values.
var (
	errRestoreKey      = kes.NewError(http.StatusBadGateway, "failed to restore key")
	errInvalidDeletion = kes.NewError(http.StatusBadRequest, "invalid deletion time: want RFC 3339, e.g. 2026-12-01T20:00:00Z")
)

// deleteKey deletes a key: soft (to a tombstone) if retention is set, else
// at once as upstream. Protected keys are refused before any store call.
func (s *Server) deleteKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	del := &r.state.deletion
	if del.protects(name) {
		writeError(w, kes.ErrKeyProtected)
		return
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	var err error
	if del.Retention > 0 {
		_, err = tombstone.Delete(ctx, r.state.keys, name, s.now())
		if errors.Is(err, keystore.ErrNotFound) {
			// Nothing to keep: answer as the store answers deleting
			// a missing key (Vault succeeds, a directory does not),
			// which is what upstream answers.
			err = r.state.keys.Delete(ctx, name)
		}
	} else {
		err = r.state.keys.Delete(ctx, name)
	}
	if err != nil {
		s.storeError(ctx, w, r, err, errDeleteKey)
		return
	}
	writeOK(w)
}

// purgeKey deletes a key and its tombstones at once: upstream's delete,
// under its own route so that a policy that allows deleting does not allow
// purging.
func (s *Server) purgeKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	if r.state.deletion.protects(name) {
		writeError(w, kes.ErrKeyProtected)
		return
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	err := r.state.keys.Delete(ctx, name)
	live := err == nil
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		s.storeError(ctx, w, r, err, errDeleteKey)
		return
	}
	erased, err := tombstone.Erase(ctx, r.state.keys, name)
	s.metrics.KeysPurged(len(erased))
	if err != nil {
		s.storeError(ctx, w, r, err, errDeleteKey)
		return
	}
	if !live && len(erased) == 0 {
		writeError(w, kes.ErrKeyNotFound)
		return
	}
	writeOK(w)
}

// restoreKey makes a tombstone the live key again: the newest, or the one
// deleted at the query's deleted_at.
func (s *Server) restoreKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	var at time.Time
	if v := r.URL.Query().Get("deleted_at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, errInvalidDeletion)
			return
		}
		at = t
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	t, err := tombstone.Restore(ctx, r.state.keys, name, at)
	switch {
	case errors.Is(err, tombstone.ErrNotDeleted):
		writeError(w, kes.ErrKeyNotDeleted)
	case errors.Is(err, keystore.ErrExists):
		writeError(w, kes.ErrKeyLive)
	case err != nil && t.Name != "":
		// Restored; only the stale tombstone could not be removed.
		s.errLog.Warn(err.Error(), reqAttrs(r))
		writeJSON(w, s.deletedKey(r.state, t))
	case err != nil:
		s.storeError(ctx, w, r, err, errRestoreKey)
	default:
		writeJSON(w, s.deletedKey(r.state, t))
	}
}

// describeDeletedKey describes the newest tombstone of a key.
func (s *Server) describeDeletedKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	found, err := tombstone.Find(ctx, r.state.keys, name)
	if err != nil {
		s.storeError(ctx, w, r, err, errReadKey)
		return
	}
	if len(found) == 0 {
		writeError(w, kes.ErrKeyNotDeleted)
		return
	}
	writeJSON(w, s.deletedKey(r.state, found[len(found)-1]))
}

// listDeletedKeys lists the tombstones of the keys with a prefix: a
// pattern as for key listing, or a prefix without its '*' ("my-").
func (s *Server) listDeletedKeys(w http.ResponseWriter, r *request) {
	prefix := r.Resource
	if !names.ValidPattern(prefix) && !names.ValidPattern(prefix+"*") {
		writeError(w, kes.ErrInvalidPattern(prefix))
		return
	}
	prefix = strings.TrimSuffix(prefix, "*")
	ctx, cancel := r.storeContext()
	defer cancel()
	resp := kes.ListDeletedKeysResponse{Keys: []kes.DeletedKey{}}
	err := tombstone.List(ctx, r.state.keys, prefix, func(t tombstone.Tombstone) bool {
		resp.Keys = append(resp.Keys, s.deletedKey(r.state, t))
		return true
	})
	if err != nil {
		s.storeError(ctx, w, r, err, errListKeys)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) deletedKey(st *state, t tombstone.Tombstone) kes.DeletedKey {
	return kes.DeletedKey{Name: t.Key, DeletedAt: t.DeletedAt, PurgeAt: st.deletion.purgeAt(t.DeletedAt)}
}

// withoutTombstones returns page without the store's internal names, which
// no client may see: a copy if it holds any, else page.
func withoutTombstones(page []string) []string {
	for i, name := range page {
		if tombstone.IsTombstone(name) {
			kept := append(make([]string, 0, len(page)), page[:i]...)
			for _, name := range page[i+1:] {
				if !tombstone.IsTombstone(name) {
					kept = append(kept, name)
				}
			}
			return kept
		}
	}
	return page
}

// firstName is where a listing of every key starts: all tombstone names
// ('-…') sort before it, and every key name (first byte [0-9A-Za-z_])
// after it.
const firstName = "0"

// Purge bounds (one round of [Server.Purge]).
const (
	purgeScan    = 8 * keystore.ListPageSize // names looked at
	purgeTimeout = time.Minute               // store calls of a round
)

// purgeCursor is where the next purge round goes on.
type purgeCursor struct {
	mu   sync.Mutex // one round at a time
	next string
}

// Purge runs one round of purging: it looks at up to 8192 tombstones,
// going on where the last round stopped, and deletes those deleted longer
// than the retention ago, auditing each. It returns how many it purged.
// With soft deletion off it does nothing. Rounds of several servers on one
// store are safe. The round ends with ctx, and after a minute at most.
func (s *Server) Purge(ctx context.Context) (int, error) {
	st := s.state.Load()
	if st.deletion.Retention <= 0 {
		return 0, nil
	}
	s.purge.mu.Lock()
	defer s.purge.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	start := s.now()
	purged, next, err := tombstone.Purge(ctx, st.keys, start.Add(-st.deletion.Retention), s.purge.next, purgeScan)
	s.purge.next = next
	s.metrics.KeysPurged(len(purged))
	for _, t := range purged {
		// What the purge route would have logged; no caller: the
		// server purges.
		s.audit.Log(log.AuditEvent{
			Time:     start,
			Method:   http.MethodDelete,
			Path:     "/v1/key/purge/" + t.Key,
			Status:   http.StatusOK,
			Duration: s.now().Sub(start),
		})
	}
	if err != nil {
		s.errLog.Error("purging deleted keys: "+err.Error(), "purged", len(purged))
	}
	return len(purged), err
}
