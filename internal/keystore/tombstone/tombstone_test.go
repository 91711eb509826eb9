package tombstone_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/keystore/tombstone"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/names"
	"github.com/openkes/kes/internal/vaulttest"
)

var t0 = time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)

func TestNameParse(t *testing.T) {
	// Every store accepts these bytes (Azure is the narrowest: letters,
	// digits and '-'), and no API key name starts with '-'.
	azure := regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	for _, key := range []string{"a", "my-key", "k-1", "minio-default-key", strings.Repeat("k", names.MaxLen)} {
		for _, at := range []time.Time{time.Unix(0, 0), t0, time.Date(4400, 1, 1, 0, 0, 0, 0, time.UTC)} {
			name := tombstone.NameOf(key, at)
			if names.Valid(name) || names.ValidPattern(name) {
				t.Errorf("NameOf(%q) = %q is a name a client may use", key, name)
			}
			if !azure.MatchString(name) || !tombstone.IsTombstone(name) {
				t.Errorf("NameOf(%q) = %q: not a name every store takes", key, name)
			}
			got, ok := tombstone.Parse(name)
			if !ok || got.Key != key || !got.DeletedAt.Equal(at) || got.Name != name {
				t.Errorf("Parse(%q) = %+v, %v; want key %q at %v", name, got, ok, key, at)
			}
		}
	}
	// Names sort by deletion time within a key.
	if a, b := tombstone.NameOf("k", t0), tombstone.NameOf("k", t0.Add(40*24*time.Hour)); a >= b {
		t.Errorf("NameOf sorts %q after %q", a, b)
	}
	for _, bad := range []string{"", "-d", "-dk", "-dk-", "-dk-123456", "-dk-12345678", "-dk-ABCDEFG", "-d-0000000", "k-0000000", "-xk-0000000"} {
		if got, ok := tombstone.Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v, want not a tombstone", bad, got)
		}
	}
}

// TestFS and TestVault run the same cases on a real store.
func TestFS(t *testing.T) {
	run(t, func(t *testing.T) keystore.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestVault(t *testing.T) {
	v := vaulttest.Start(t, nil)
	n := 0
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			run(t, func(t *testing.T) keystore.Store {
				n++
				engine, mount := fmt.Sprintf("kv-%d", n), fmt.Sprintf("approle-%d", n)
				v.EnableKV(t, engine, version)
				rules := fmt.Sprintf("path %q { capabilities = [\"create\", \"read\", \"delete\", \"list\"] }\npath %q { capabilities = [\"list\"] }\n", engine+"/*", engine)
				v.WritePolicy(t, engine, rules)
				v.AppRole(t, mount, "kes", "role-"+engine, "secret-"+engine, map[string]any{"token_policies": engine, "token_ttl": "1h"})
				s, err := vault.Connect(t.Context(), &vault.Config{
					Endpoint: v.URL(), Engine: engine, EngineVersion: version,
					AppRole: &vault.AppRole{Engine: mount, ID: "role-" + engine, Secret: "secret-" + engine},
					Logger:  slog.New(slog.DiscardHandler),
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func run(t *testing.T, newStore func(t *testing.T) keystore.Store) {
	t.Run("DeleteRestore", func(t *testing.T) {
		st := newStore(t)
		s := tombstone.Raw(st)
		ctx := t.Context()
		mustCreate(t, st, "k", "record-1")
		ts, err := tombstone.Delete(ctx, s, "k", t0)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Key != "k" || !ts.DeletedAt.Equal(t0) || ts.Name != tombstone.NameOf("k", t0) {
			t.Fatalf("Delete = %+v", ts)
		}
		if _, err := st.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get of a soft-deleted key: %v, want ErrNotFound", err)
		}
		if got := get(t, st, ts.Name); got != "record-1" {
			t.Fatalf("tombstone holds %q", got)
		}
		restored, err := tombstone.Restore(ctx, s, "k", time.Time{})
		if err != nil || restored != ts {
			t.Fatalf("Restore = %+v, %v; want %+v", restored, err, ts)
		}
		if got := get(t, st, "k"); got != "record-1" {
			t.Fatalf("restored key holds %q", got)
		}
		if found := find(t, s, "k"); len(found) != 0 {
			t.Fatalf("tombstones after restore: %v", found)
		}
		if _, err := tombstone.Restore(ctx, s, "k", time.Time{}); !errors.Is(err, tombstone.ErrNotDeleted) {
			t.Fatalf("second Restore: %v, want ErrNotDeleted", err)
		}
	})

	t.Run("DeleteMissing", func(t *testing.T) {
		st := newStore(t)
		s := tombstone.Raw(st)
		if _, err := tombstone.Delete(t.Context(), s, "missing", t0); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Delete of a missing key: %v, want ErrNotFound", err)
		}
		if found := find(t, s, "missing"); len(found) != 0 {
			t.Fatalf("tombstones: %v", found)
		}
	})

	t.Run("Generations", func(t *testing.T) {
		// Deleted, re-created, deleted again (once within the same
		// second): each deletion keeps its own record; restore takes the
		// newest unless told which.
		st := newStore(t)
		s := tombstone.Raw(st)
		ctx := t.Context()
		for i, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(time.Hour)} {
			mustCreate(t, st, "k", fmt.Sprint("gen-", i))
			if _, err := tombstone.Delete(ctx, s, "k", at); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(t, st, "k-x", "other key") // shares the prefix "k-"
		if _, err := tombstone.Delete(ctx, s, "k-x", t0); err != nil {
			t.Fatal(err)
		}
		found := find(t, s, "k")
		want := []time.Time{t0, t0.Add(time.Hour), t0.Add(time.Hour + time.Second)}
		if len(found) != len(want) {
			t.Fatalf("Find = %v, want deletions at %v", found, want)
		}
		for i := range want {
			if !found[i].DeletedAt.Equal(want[i]) || found[i].Key != "k" {
				t.Fatalf("Find = %v, want deletions at %v", found, want)
			}
		}
		mustCreate(t, st, "k", "live")
		if _, err := tombstone.Restore(ctx, s, "k", time.Time{}); !errors.Is(err, keystore.ErrExists) {
			t.Fatalf("Restore over a live key: %v, want ErrExists", err)
		}
		if got := get(t, st, "k"); got != "live" || len(find(t, s, "k")) != 3 {
			t.Fatalf("Restore over a live key changed something: key %q, %d tombstones", got, len(find(t, s, "k")))
		}
		if err := st.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := tombstone.Restore(ctx, s, "k", t0.Add(30*time.Minute)); !errors.Is(err, tombstone.ErrNotDeleted) {
			t.Fatalf("Restore of a time with no deletion: %v, want ErrNotDeleted", err)
		}
		if _, err := tombstone.Restore(ctx, s, "k", t0); err != nil {
			t.Fatal(err)
		}
		if got := get(t, st, "k"); got != "gen-0" {
			t.Fatalf("Restore of the first deletion gave %q", got)
		}
		if err := st.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := tombstone.Restore(ctx, s, "k", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, st, "k"); got != "gen-2" {
			t.Fatalf("Restore of the newest deletion gave %q", got)
		}
		var listed []string
		if err := tombstone.List(ctx, s, "k", func(ts tombstone.Tombstone) bool { listed = append(listed, ts.Key); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(listed, []string{"k", "k-x"}) {
			t.Fatalf("List(k) = %v", listed)
		}
		erased, err := tombstone.Erase(ctx, s, "k")
		if err != nil || len(erased) != 1 || !erased[0].DeletedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("Erase = %v, %v", erased, err)
		}
		if found := find(t, s, "k-x"); len(found) != 1 {
			t.Fatalf("Erase(k) touched k-x: %v", found)
		}
	})

	t.Run("CrashBetweenSteps", func(t *testing.T) {
		st := newStore(t)
		failing := &failDelete{Store: tombstone.Raw(st), name: "k"}
		ctx := t.Context()
		mustCreate(t, st, "k", "record")
		if _, err := tombstone.Delete(ctx, failing, "k", t0); !errors.Is(err, errCrash) {
			t.Fatalf("Delete with a failing second step: %v", err)
		}
		// Consistent: the key is live and readable; a tombstone exists.
		if got := get(t, st, "k"); got != "record" {
			t.Fatalf("key after a failed second step: %q", got)
		}
		if found := find(t, failing, "k"); len(found) != 1 {
			t.Fatalf("tombstones after a failed second step: %v", found)
		}
		// A retry in the same second finishes with the same tombstone; one
		// later leaves two copies of the same record.
		failing.name = ""
		if _, err := tombstone.Delete(ctx, failing, "k", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("key after the retry: %v", err)
		}
		if found := find(t, failing, "k"); len(found) != 1 {
			t.Fatalf("tombstones after a retry in the same second: %v", found)
		}

		mustCreate(t, st, "k2", "record-2")
		failing.name = "k2"
		if _, err := tombstone.Delete(ctx, failing, "k2", t0); !errors.Is(err, errCrash) {
			t.Fatal(err)
		}
		failing.name = ""
		if _, err := tombstone.Delete(ctx, failing, "k2", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		found := find(t, failing, "k2")
		if len(found) != 2 || get(t, st, found[0].Name) != "record-2" || get(t, st, found[1].Name) != "record-2" {
			t.Fatalf("tombstones after a later retry: %v", found)
		}
		if _, err := tombstone.Restore(ctx, failing, "k2", time.Time{}); err != nil || get(t, st, "k2") != "record-2" {
			t.Fatalf("Restore after a retried delete: %v", err)
		}
	})

	t.Run("Purge", func(t *testing.T) {
		st := newStore(t)
		s := tombstone.Raw(st)
		ctx := t.Context()
		var old, fresh []string
		for i := range 7 {
			name := fmt.Sprint("key-", i)
			mustCreate(t, st, name, name)
			at := t0.Add(time.Duration(i) * time.Hour)
			if _, err := tombstone.Delete(ctx, s, name, at); err != nil {
				t.Fatal(err)
			}
			if at.Before(t0.Add(4 * time.Hour)) {
				old = append(old, name)
			} else {
				fresh = append(fresh, name)
			}
		}
		mustCreate(t, st, "live", "live")
		// Bounded rounds of 3 names go on where the last one stopped.
		var purged []string
		next, rounds := "", 0
		for {
			got, n, err := tombstone.Purge(ctx, s, t0.Add(4*time.Hour), next, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, ts := range got {
				purged = append(purged, ts.Key)
			}
			rounds++
			if next = n; next == "" {
				break
			}
		}
		slices.Sort(purged)
		if !slices.Equal(purged, old) || rounds != 3 {
			t.Fatalf("purged %v in %d rounds, want %v in 3", purged, rounds, old)
		}
		for _, name := range old {
			if _, err := tombstone.Restore(ctx, s, name, time.Time{}); !errors.Is(err, tombstone.ErrNotDeleted) {
				t.Fatalf("Restore of purged %s: %v", name, err)
			}
		}
		for _, name := range fresh {
			if found := find(t, s, name); len(found) != 1 {
				t.Fatalf("%s: tombstones %v, want the one not expired", name, found)
			}
		}
		if get(t, st, "live") != "live" {
			t.Fatal("purge touched a live key")
		}
		// Again (as a second server would): nothing left to purge.
		if got, _, err := tombstone.Purge(ctx, s, t0.Add(4*time.Hour), "", 100); err != nil || len(got) != 0 {
			t.Fatalf("second purge: %v, %v", got, err)
		}
	})
}

var errCrash = errors.New("simulated crash before the second step")

// failDelete fails the deletion of name, as a crash after the first step.
type failDelete struct {
	tombstone.Store
	name string
}

func (f *failDelete) Delete(ctx context.Context, name string) error {
	if name == f.name {
		return errCrash
	}
	return f.Store.Delete(ctx, name)
}

func mustCreate(t *testing.T, st keystore.Store, name, value string) {
	t.Helper()
	if err := st.Create(t.Context(), name, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, st interface {
	Get(context.Context, string) ([]byte, error)
}, name string) string {
	t.Helper()
	b, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return string(bytes.Clone(b))
}

func find(t *testing.T, s tombstone.Store, key string) []tombstone.Tombstone {
	t.Helper()
	found, err := tombstone.Find(t.Context(), s, key)
	if err != nil {
		t.Fatal(err)
	}
	return found
}
