package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/vectors"
)

const week = 7 * 24 * time.Hour

// sdkClient is an SDK client of ts as the vectors' admin (or the API key
// of the given vectors index).
func sdkClient(t *testing.T, ts *testServer, key int) *kes.Client {
	t.Helper()
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	apiKey, err := kes.ParseAPIKey(keys[key].APIKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kes.NewClient([]string{ts.URL}, kes.WithAPIKey(apiKey), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// listAll lists the key names with prefix through the SDK.
func listAll(t *testing.T, c *kes.Client, prefix string) []string {
	t.Helper()
	var names []string
	for name, err := range c.ListKeys(t.Context(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// TestSoftDelete: a deleted key is gone for upstream clients (describe,
// decrypt, list answer exactly as for a key that never existed) and comes
// back with restore, decrypting what it encrypted before.
func TestSoftDelete(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ts := startServer(t, serverOptions{deletion: api.Deletion{Retention: week}, now: clk.Now})
	c := sdkClient(t, ts, 0)
	admin := ts.vectorClients(t, false)["admin"]
	ctx := t.Context()
	for _, name := range []string{"app", "app-2", "other"} {
		if err := c.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	dek, err := c.GenerateKey(ctx, "app", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	// Cached by the decrypt: the delete must drop it from the cache.
	if _, err := c.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKey(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	deletedAt := clk.Now()

	// The answers for a key that never existed, byte for byte.
	for _, route := range []string{"GET /v1/key/describe/", "DELETE /v1/key/delete/", "POST /v1/key/generate/"} {
		method, path, _ := strings.Cut(route, " ")
		r := do(t, admin, method, ts.URL+path+"app", nil)
		want := do(t, admin, method, ts.URL+path+"never-existed", nil)
		if r.Status != http.StatusNotFound || r.Status != want.Status || string(r.Body) != string(want.Body) {
			t.Fatalf("%s app (soft-deleted): %d %q, want %d %q", route, r.Status, r.Body, want.Status, want.Body)
		}
	}
	if _, err := c.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx")); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("decrypt with a soft-deleted key: %v, want ErrKeyNotFound", err)
	}
	for _, prefix := range []string{"", "*", "a*", "app"} {
		if names := listAll(t, c, prefix); slices.Contains(names, "app") || slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "-") }) {
			t.Fatalf("list %q = %v: shows a deleted key", prefix, names)
		}
	}
	if names := listAll(t, c, ""); !slices.Equal(names, []string{"app-2", "other"}) {
		t.Fatalf("list = %v, want [app-2 other]", names)
	}

	// The extension routes see it.
	d, err := c.DescribeDeletedKey(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "app" || !d.DeletedAt.Equal(deletedAt) || !d.PurgeAt.Equal(deletedAt.Add(week)) {
		t.Fatalf("DescribeDeletedKey = %+v, want deleted at %v, purged a week later", d, deletedAt)
	}
	if _, err := c.DescribeDeletedKey(ctx, "other"); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("DescribeDeletedKey of a live key: %v, want ErrKeyNotDeleted", err)
	}
	for _, prefix := range []string{"", "*", "ap", "app", "a*"} {
		list, err := c.ListDeletedKeys(ctx, prefix)
		if err != nil || len(list) != 1 || list[0] != *d {
			t.Fatalf("ListDeletedKeys(%q) = %+v, %v; want [%+v]", prefix, list, err, *d)
		}
	}
	for _, prefix := range []string{"app-", "o"} {
		if list, err := c.ListDeletedKeys(ctx, prefix); len(list) != 0 || err != nil {
			t.Fatalf("ListDeletedKeys(%q) = %+v, %v; want none", prefix, list, err)
		}
	}
	// A client cannot name the tombstones themselves.
	if _, err := c.ListDeletedKeys(ctx, "-d"); !errors.Is(err, kes.ErrInvalidPattern("-d")) {
		t.Fatalf("ListDeletedKeys(-d): %v, want the invalid pattern error", err)
	}

	// Create of the name works (a new key), and restore does not overwrite it.
	if err := c.CreateKey(ctx, "app"); err != nil {
		t.Fatalf("create over a soft-deleted name: %v", err)
	}
	if _, err := c.RestoreKey(ctx, "app", time.Time{}); !errors.Is(err, kes.ErrKeyLive) {
		t.Fatalf("restore over a live key: %v, want ErrKeyLive (409)", err)
	}
	if _, err := c.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx")); !errors.Is(err, kes.ErrDecrypt) {
		t.Fatalf("decrypt with the new key of the name: %v, want ErrDecrypt", err)
	}
	clk.Add(time.Hour)
	if err := c.DeleteKey(ctx, "app"); err != nil { // the new key
		t.Fatal(err)
	}
	if list, _ := c.ListDeletedKeys(ctx, "app"); len(list) != 2 {
		t.Fatalf("deleted twice: %+v", list)
	}

	// Restore the first deletion: the old ciphertext decrypts again.
	got, err := c.RestoreKey(ctx, "app", deletedAt)
	if err != nil || !got.DeletedAt.Equal(deletedAt) {
		t.Fatalf("RestoreKey = %+v, %v", got, err)
	}
	plaintext, err := c.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx"))
	if err != nil || !bytes.Equal(plaintext, dek.Plaintext) {
		t.Fatalf("decrypt after restore: %v", err)
	}
	if _, err := c.RestoreKey(ctx, "app", deletedAt); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore of a restored deletion: %v, want ErrKeyNotDeleted", err)
	}
	if _, err := c.RestoreKey(ctx, "never", time.Time{}); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore of a key never deleted: %v, want ErrKeyNotDeleted", err)
	}
	if r := do(t, admin, http.MethodPut, ts.URL+"/v1/key/restore/app?deleted_at=yesterday", nil); r.Status != http.StatusBadRequest {
		t.Fatalf("restore with a bad time: %d %s", r.Status, r.Body)
	}
	audit := ts.Audit.String()
	for _, want := range []string{"secret key 'app' deleted", "/v1/key/restore/app", "/v1/key/deleted/describe/app"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
}

// TestImmediateDelete: with retention 0 the delete route deletes as
// upstream: the key's file is gone and nothing is kept.
func TestImmediateDelete(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := sdkClient(t, ts, 0)
	ctx := t.Context()
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if files := snapshotDir(t, ts.Dir); len(files) != 0 {
		t.Fatalf("files left after an immediate delete: %v", files)
	}
	if _, err := c.RestoreKey(ctx, "k", time.Time{}); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore after an immediate delete: %v", err)
	}
	if err := c.DeleteKey(ctx, "k"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("second delete: %v, want ErrKeyNotFound as upstream on fs", err)
	}
}

// TestPurgeRoute: purge deletes the live key and every deleted copy at
// once; only an identity whose policy names the purge route may call it.
func TestPurgeRoute(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ts := startServer(t, serverOptions{
		deletion: api.Deletion{Retention: week}, now: clk.Now,
		policies: map[string]auth.PolicyConfig{
			// MinIO's policy, with delete.
			"minio": {Allow: []string{"/v1/key/create/*", "/v1/key/generate/*", "/v1/key/decrypt/*", "/v1/key/list/*", "/v1/key/delete/*"},
				Identities: []kes.Identity{"015a9cd70d0cf226ca9bcdecba837a3d52e8d843a9ee9571c70cdb03f776c93f"}},
		},
	})
	c := sdkClient(t, ts, 0)
	minio := sdkClient(t, ts, 1)
	ctx := t.Context()
	for range 2 {
		if err := minio.CreateKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := minio.DeleteKey(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	if err := minio.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// MinIO's identity may delete (softly) but neither purge nor restore.
	if err := minio.PurgeKey(ctx, "k"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("purge with MinIO's policy: %v, want ErrNotAllowed", err)
	}
	if _, err := minio.RestoreKey(ctx, "k", time.Time{}); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("restore with MinIO's policy: %v, want ErrNotAllowed", err)
	}
	if _, err := minio.ListDeletedKeys(ctx, ""); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("list deleted with MinIO's policy: %v, want ErrNotAllowed", err)
	}
	if err := c.PurgeKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if files := snapshotDir(t, ts.Dir); len(files) != 0 {
		t.Fatalf("files left after purge: %v", files)
	}
	if _, err := c.RestoreKey(ctx, "k", time.Time{}); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore after purge: %v", err)
	}
	if err := c.PurgeKey(ctx, "k"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("purge of nothing: %v, want ErrKeyNotFound", err)
	}
	if m := metricValue(t, ts, "kes_key_purged_total"); m != "2" {
		t.Errorf("kes_key_purged_total = %s, want 2", m)
	}
}

// TestProtectedKeys: delete and purge of a protected key answer 403 and
// change nothing; other keys are deleted as usual.
func TestProtectedKeys(t *testing.T) {
	for _, retention := range []time.Duration{0, week} {
		t.Run(retention.String(), func(t *testing.T) {
			ts := startServer(t, serverOptions{deletion: api.Deletion{Retention: retention, Protect: []string{"minio-*", "root"}}})
			c := sdkClient(t, ts, 0)
			ctx := t.Context()
			for _, name := range []string{"minio-1", "root", "root-2"} {
				if err := c.CreateKey(ctx, name); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshotDir(t, ts.Dir)
			for _, name := range []string{"minio-1", "root", "minio-missing"} {
				if err := c.DeleteKey(ctx, name); !errors.Is(err, kes.ErrKeyProtected) {
					t.Fatalf("delete %s: %v, want ErrKeyProtected", name, err)
				}
				if err := c.PurgeKey(ctx, name); !errors.Is(err, kes.ErrKeyProtected) {
					t.Fatalf("purge %s: %v, want ErrKeyProtected", name, err)
				}
			}
			if after := snapshotDir(t, ts.Dir); len(after) != len(before) {
				t.Fatalf("protected deletes changed the store: %d files, want %d", len(after), len(before))
			}
			if err := c.DeleteKey(ctx, "root-2"); err != nil {
				t.Fatalf("delete of an unprotected key: %v", err)
			}
		})
	}
}

// TestPurgeRound: a round purges the tombstones older than the retention
// and no other, audits each and counts them.
func TestPurgeRound(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	ts := startServer(t, serverOptions{deletion: api.Deletion{Retention: week}, now: clk.Now})
	c := sdkClient(t, ts, 0)
	ctx := t.Context()
	for i, name := range []string{"old", "new"} {
		clk.Set(t0.Add(time.Duration(i) * 24 * time.Hour))
		if err := c.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateKey(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(week - time.Second))
	if n, err := ts.Server.Purge(ctx); n != 0 || err != nil {
		t.Fatalf("Purge before the retention passed = %d, %v", n, err)
	}
	clk.Set(t0.Add(week + time.Hour))
	if n, err := ts.Server.Purge(ctx); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	list, err := c.ListDeletedKeys(ctx, "")
	if err != nil || len(list) != 1 || list[0].Name != "new" {
		t.Fatalf("deleted keys after purge: %+v, %v", list, err)
	}
	if _, err := c.RestoreKey(ctx, "old", time.Time{}); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore of a purged key: %v", err)
	}
	if names := listAll(t, c, ""); !slices.Equal(names, []string{"live"}) {
		t.Fatalf("live keys after purge: %v", names)
	}
	if n, err := ts.Server.Purge(ctx); n != 0 || err != nil {
		t.Fatalf("second Purge = %d, %v; want 0", n, err)
	}
	if !strings.Contains(ts.Audit.String(), "req.path=/v1/key/purge/old") {
		t.Errorf("no audit line for the purge:\n%s", ts.Audit.String())
	}
	if m := metricValue(t, ts, "kes_key_purged_total"); m != "1" {
		t.Errorf("kes_key_purged_total = %s, want 1", m)
	}

	// With soft deletion off, rounds keep what is left.
	ts.Server.Update(ts.Keys, authorizer(t), nil, api.Deletion{})
	clk.Set(t0.Add(100 * week))
	if n, err := ts.Server.Purge(ctx); n != 0 || err != nil {
		t.Fatalf("Purge with soft deletion off = %d, %v; want 0", n, err)
	}
}

// TestDeleteCrash: a delete whose second step (deleting the key after
// its tombstone was written) fails answers the failure and leaves the key
// live and usable; deleting again finishes it, with the same tombstone.
func TestDeleteCrash(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	var crash atomic.Bool
	ts := startServer(t, serverOptions{
		deletion: api.Deletion{Retention: week}, now: clk.Now,
		store: func(dir string) keystore.Store {
			s, err := fs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			return &crashingStore{Store: s, crash: &crash}
		},
	})
	c := sdkClient(t, ts, 0)
	ctx := t.Context()
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.GenerateKey(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	crash.Store(true)
	if err := c.DeleteKey(ctx, "k"); err == nil || !strings.Contains(err.Error(), "failed to delete key") {
		t.Fatalf("delete with a failing second step: %v, want 502 failed to delete key", err)
	}
	crash.Store(false)
	if _, err := c.Decrypt(ctx, "k", dek.Ciphertext, nil); err != nil {
		t.Fatalf("key after a failed delete: %v", err)
	}
	if names := listAll(t, c, ""); !slices.Equal(names, []string{"k"}) {
		t.Fatalf("list after a failed delete: %v", names)
	}
	if err := c.DeleteKey(ctx, "k"); err != nil {
		t.Fatalf("repeated delete: %v", err)
	}
	if _, err := c.DescribeKey(ctx, "k"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("describe after the repeated delete: %v", err)
	}
	if list, err := c.ListDeletedKeys(ctx, ""); err != nil || len(list) != 1 {
		t.Fatalf("deleted keys: %+v, %v; want one", list, err)
	}
	if _, err := c.RestoreKey(ctx, "k", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, "k", dek.Ciphertext, nil); err != nil {
		t.Fatalf("decrypt after restore: %v", err)
	}
}

// crashingStore fails deleting key names (not tombstones) while crash is
// set, as a server that dies between the two steps of a soft delete.
type crashingStore struct {
	keystore.Store
	crash *atomic.Bool
}

func (s *crashingStore) Delete(ctx context.Context, name string) error {
	if s.crash.Load() && !strings.HasPrefix(name, "-") {
		return errors.New("simulated crash")
	}
	return s.Store.Delete(ctx, name)
}

// metricValue returns the value of a single-sample metric family of ts.
func metricValue(t *testing.T, ts *testServer, name string) string {
	t.Helper()
	families, err := ts.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return strconv.FormatFloat(f.GetMetric()[0].GetCounter().GetValue(), 'f', -1, 64)
		}
	}
	t.Fatalf("no metric %s", name)
	return ""
}

func authorizer(t *testing.T) *auth.Authorizer {
	t.Helper()
	a, err := auth.New(vectorsAdmin, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}
