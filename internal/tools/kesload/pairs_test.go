package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vaulttest"
)

// TestPairsSmoke runs the pairs mode briefly against two servers of the
// same binary and checks that every figure is positive and that the
// report names both.
func TestPairsSmoke(t *testing.T) {
	bin := buildKES(t)
	rep, err := Pairs(t.Context(), PairsOptions{KES: []string{bin, bin}, Dir: t.TempDir(), Clients: 4, Duration: 300 * time.Millisecond, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		if len(row.Samples) != 2 {
			t.Fatalf("%s: %d samples, want 2", row.Name, len(row.Samples))
		}
		for _, s := range row.Samples {
			if s.Pairs <= 0 || s.P50 <= 0 || s.P99 < s.P50 || s.CPU <= 0 {
				t.Errorf("%s: implausible sample %+v", row.Name, s)
			}
		}
	}
	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kes-0") || !strings.Contains(out.String(), "kes-1") {
		t.Fatalf("report names not both servers:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}

// TestPairsRetention checks that -retention reaches the servers' config:
// with the default, every deleted key leaves a tombstone in the store;
// with "0", none.
func TestPairsRetention(t *testing.T) {
	bin := buildKES(t)
	for _, tc := range []struct {
		retention  string
		tombstones bool
	}{{"", true}, {"0", false}} {
		t.Run("retention="+tc.retention, func(t *testing.T) {
			dir := t.TempDir()
			rep, err := Pairs(t.Context(), PairsOptions{KES: []string{bin}, Dir: dir, Clients: 2, Duration: 200 * time.Millisecond, Rounds: 1, Retention: tc.retention})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows[0].Samples[0].Pairs == 0 {
				t.Fatal("no pairs")
			}
			entries, err := os.ReadDir(filepath.Join(dir, "kes-0-keys"))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "-d") {
					n++
				}
			}
			if got := n > 0; got != tc.tombstones {
				t.Fatalf("%d tombstones after %d pairs, want some: %v", n, rep.Rows[0].Samples[0].Pairs, tc.tombstones)
			}
		})
	}
}

// TestPairsVault runs the pairs mode briefly on a real Vault (the binary
// scripts/install-vault.sh builds; missing, the test fails with that
// hint), on K/V v1 and v2: a kes server on a K/V mount of its own and the
// Vault API client. Every figure must be positive, Vault's CPU counted for both rows
// and the kes server's for its own only, and the report must show the
// Vault columns.
func TestPairsVault(t *testing.T) {
	for _, kv := range []string{"v1", "v2"} {
		t.Run(kv, func(t *testing.T) {
			rep, err := Pairs(t.Context(), PairsOptions{KES: []string{buildKES(t)}, Dir: t.TempDir(), Clients: 4,
				Duration: 300 * time.Millisecond, Rounds: 1, Store: StoreVault, VaultBin: vaulttest.Bin(t), VaultKV: kv})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Rows) != 2 || rep.Rows[0].Name != "kes-0" || rep.Rows[1].Name != "vault-api" {
				t.Fatalf("rows %+v, want kes-0 and vault-api", rep.Rows)
			}
			if !strings.HasPrefix(rep.Vault, "Vault v1.14.0") {
				t.Errorf("Vault version %q", rep.Vault)
			}
			for _, row := range rep.Rows {
				if len(row.Samples) != 1 {
					t.Fatalf("%s: %d samples, want 1", row.Name, len(row.Samples))
				}
				s := row.Samples[0]
				if s.Pairs <= 0 || s.P50 <= 0 || s.P99 < s.P50 || s.VaultCPU <= 0 || (s.CPU > 0) != (row.Name == "kes-0") {
					t.Errorf("%s: implausible sample %+v", row.Name, s)
				}
			}
			var out strings.Builder
			if err := rep.Print(&out); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				`(?m)^create\+delete pairs, 4 clients, HTTP/1\.1, 1 × 300ms, Vault v1\.14\.0 .*K/V ` + kv + `$`,
				`(?m)^server\s+pairs/s\s+ratio\s+p50\s+p99\s+cpu µs/pair\s+of vault-api\s+vault cpu µs/pair\s+binary$`,
				`(?m)^kes-0\s+\d+\s+1\.00\s+\S+\s+\S+\s+\d+\s+\d+\.\d\d\s+\d+\s+/`,
				`(?m)^vault-api\s+\d+\s+-\s+\S+\s+\S+\s+-\s+1\.00\s+\d+\s+Vault Go API client$`,
			} {
				if !regexp.MustCompile(want).MatchString(out.String()) {
					t.Errorf("report does not match %s:\n%s", want, out.String())
				}
			}
			t.Log("\n" + out.String())
		})
	}
}

// TestPairsVaultOptions: -store vault without a Vault binary fails with
// the hint where to get one, before anything starts; unknown stores and
// K/V versions are refused.
func TestPairsVaultOptions(t *testing.T) {
	base := PairsOptions{KES: []string{"kes"}, Dir: t.TempDir()}
	o := base
	o.Store = StoreVault
	if _, err := Pairs(t.Context(), o); !errors.Is(err, errNoVaultBin) || !strings.Contains(err.Error(), "scripts/install-vault.sh") {
		t.Errorf("Pairs without a Vault binary = %v, want errNoVaultBin with a hint", err)
	}
	t.Setenv(envVaultBin, "")
	if err := run(t.Context(), []string{"pairs", "-store", "vault"}, io.Discard, io.Discard); !errors.Is(err, errNoVaultBin) {
		t.Errorf("kesload pairs -store vault without a binary = %v, want errNoVaultBin", err)
	}
	for name, mutate := range map[string]func(*PairsOptions){
		"store":      func(o *PairsOptions) { o.Store = "s3" },
		"kv version": func(o *PairsOptions) { o.Store, o.VaultBin, o.VaultKV = StoreVault, "vault", "v3" },
	} {
		o := base
		mutate(&o)
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%s: no error for %+v", name, o)
		}
	}
	if o, err := base.withDefaults(); err != nil || o.Store != StoreFS || o.VaultKV != "v2" {
		t.Errorf("defaults: store %q, K/V %q, %v", o.Store, o.VaultKV, err)
	}
}
