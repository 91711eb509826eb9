package vault_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

func TestConformance(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	tests := []struct {
		name, version, prefix string
		transit               bool
	}{
		{"v1", "v1", "", false},
		{"v1-prefix", "v1", "tenant-1/keys", false},
		{"v1-transit", "v1", "", true},
		{"v2", "v2", "", false},
		{"v2-prefix", "v2", "tenant-1", false},
		{"v2-prefix-transit", "v2", "tenant-2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// K/V v1 has no check-and-set: Replace refuses (key
			// rotation answers 501 there).
			storetest.RunOptions(t, func(t *testing.T) keystore.Store {
				return connect(t, setup(t, srv, tt.version, tt.prefix, tt.transit, nil))
			}, storetest.Options{DeleteMissingOK: true, ReplaceUnsupported: tt.version == "v1"})
		})
	}
}

// TestUpstreamLayout writes key records the way upstream KES stores them
// with the raw Vault API and reads them through the store, and checks that
// what the store writes has exactly that layout.
func TestUpstreamLayout(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	dir := vectors.Path(t, "keystore")
	names := []string{"vec-created-1", "vec-imported-chacha20", "vec-legacy-v1-aes256"}
	records := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("read vector: %v", err)
		}
		records[n] = b
	}
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			cfg := setup(t, srv, version, "upstream", false, nil)
			root := srv.Client(t)
			path := func(name string) string {
				if version == "v2" {
					return cfg.Engine + "/data/upstream/" + name
				}
				return cfg.Engine + "/upstream/" + name
			}
			// Written by upstream: {"<name>": "<record>"} (v2: in the data wrapper).
			upstream := names[0]
			data := map[string]any{upstream: string(records[upstream])}
			if version == "v2" {
				data = map[string]any{"data": data}
			}
			if _, err := root.Logical().Write(path(upstream), data); err != nil {
				t.Fatal(err)
			}
			s := connect(t, cfg)
			got, err := s.Get(t.Context(), upstream)
			if err != nil || !bytes.Equal(got, records[upstream]) {
				t.Fatalf("Get(%s) = %q, %v; want the upstream record byte for byte", upstream, got, err)
			}
			if err := s.Create(t.Context(), upstream, []byte("x")); !errors.Is(err, keystore.ErrExists) {
				t.Fatalf("Create over upstream key: %v, want keystore.ErrExists", err)
			}
			// Written by us, read raw.
			for _, n := range names[1:] {
				if err := s.Create(t.Context(), n, records[n]); err != nil {
					t.Fatal(err)
				}
				sec, err := root.Logical().Read(path(n))
				if err != nil || sec == nil {
					t.Fatalf("raw read %s: %v, %v", n, sec, err)
				}
				fields := sec.Data
				if version == "v2" {
					fields, _ = sec.Data["data"].(map[string]any)
					md, _ := sec.Data["metadata"].(map[string]any)
					if v, _ := md["version"].(interface{ String() string }); v == nil || v.String() != "1" {
						t.Errorf("%s: stored as version %v, want 1", n, md["version"])
					}
				}
				if len(fields) != 1 || fields[n] != string(records[n]) {
					t.Errorf("%s: raw data = %v; want exactly {%q: <record>}", n, fields, n)
				}
			}
			// Delete removes the key (v2: all versions, the metadata too).
			if err := s.Delete(t.Context(), upstream); err != nil {
				t.Fatal(err)
			}
			if version == "v2" {
				if sec, err := root.Logical().Read(cfg.Engine + "/metadata/upstream/" + upstream); err != nil || sec != nil {
					t.Fatalf("metadata after Delete = %v, %v; want none", sec, err)
				}
			}
			if _, err := s.Get(t.Context(), upstream); !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("Get after Delete: %v, want keystore.ErrNotFound", err)
			}
		})
	}
}

// TestV2ReadsVersion1: K/V v2 serves version 1 of a secret even if someone
// wrote newer versions, as upstream.
func TestV2ReadsVersion1(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	cfg := setup(t, srv, "v2", "", false, nil)
	s := connect(t, cfg)
	if err := s.Create(t.Context(), "k", []byte("first")); err != nil {
		t.Fatal(err)
	}
	root := srv.Client(t)
	if _, err := root.Logical().Write(cfg.Engine+"/data/k", map[string]any{"data": map[string]any{"k": "second"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "first" {
		t.Fatalf("Get = %q, %v; want version 1 %q", got, err, "first")
	}
}

func TestConnectErrors(t *testing.T) {
	approle := &vault.AppRole{ID: "id", Secret: "secret"}
	tests := []struct {
		name string
		cfg  vault.Config
		want error
	}{
		{"no endpoint", vault.Config{AppRole: approle}, vault.ErrNoEndpoint},
		{"bad version", vault.Config{Endpoint: "http://127.0.0.1:1", EngineVersion: "v3", AppRole: approle}, vault.ErrEngineVersion},
		{"no auth", vault.Config{Endpoint: "http://127.0.0.1:1"}, vault.ErrNoAuth},
		{"two auth", vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: approle, Kubernetes: &vault.Kubernetes{JWT: "x"}}, vault.ErrManyAuth},
		{"transit without key", vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: approle, Transit: &vault.Transit{}}, vault.ErrNoTransitKey},
		{"approle without id", vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: &vault.AppRole{Secret: "secret"}}, vault.ErrNoAppRoleID},
		{"approle without secret", vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: &vault.AppRole{ID: "id"}}, vault.ErrNoAppRoleSecret},
		{"kubernetes without jwt", vault.Config{Endpoint: "http://127.0.0.1:1", Kubernetes: &vault.Kubernetes{}}, vault.ErrNoJWT},
		{"tls half", vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: approle, TLS: vault.TLS{KeyFile: "k"}}, vault.ErrTLSPair},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := vault.Connect(t.Context(), &tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Connect: %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		cfg := vault.Config{Endpoint: "http://127.0.0.1:1", AppRole: approle}
		_, err := vault.Connect(t.Context(), &cfg)
		if !keystore.IsUnreachable(err) {
			t.Fatalf("Connect to closed port: %v, want an unreachable error", err)
		}
	})
}

// TestReplaceVersions: Replace on K/V v2 writes a new version by
// check-and-set, marked, which the store then serves; version 1 keeps the
// old value, which upstream nodes sharing the engine go on reading. (This
// replaces TestNoReplacer: the store now offers Replace because reads
// follow the versions it writes; see the Store doc.) On K/V v1 Replace
// refuses with ErrNoCheckAndSet.
func TestReplaceVersions(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	cfg := setup(t, srv, "v2", "", false, nil)
	s := connect(t, cfg)
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "k", []byte("first"), []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "second" {
		t.Fatalf("Get = %q, %v; want second", got, err)
	}
	root := srv.Client(t)
	sec, err := root.Logical().ReadWithData(cfg.Engine+"/data/k", map[string][]string{"version": {"1"}})
	if err != nil || sec == nil {
		t.Fatal(err)
	}
	if d, _ := sec.Data["data"].(map[string]any); len(d) != 1 || d["k"] != "first" {
		t.Fatalf("version 1 = %v; want upstream's layout with the old value", sec.Data["data"])
	}
	// Someone writes an unmarked version: the store serves version 1, as
	// upstream, and a Replace from what it serves still works.
	if _, err := root.Logical().Write(cfg.Engine+"/data/k", map[string]any{"data": map[string]any{"k": "third"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "first" {
		t.Fatalf("Get = %q, %v; want version 1", got, err)
	}
	if err := s.Replace(ctx, "k", []byte("second"), []byte("x")); !errors.Is(err, keystore.ErrChanged) {
		t.Fatalf("Replace from a value not served: %v", err)
	}
	if err := s.Replace(ctx, "k", []byte("first"), []byte("fourth")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "fourth" {
		t.Fatalf("Get = %q, %v; want fourth", got, err)
	}

	v1 := connect(t, setup(t, srv, "v1", "", false, nil))
	if err := v1.Create(ctx, "k", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := v1.Replace(ctx, "k", []byte("first"), []byte("second")); !errors.Is(err, vault.ErrNoCheckAndSet) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Replace on K/V v1: %v", err)
	}
}
