package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/vaulttest"
)

// keystoreVectors is the directory of upstream's stored key records
// (testdata/vectors/keystore): file name = key name, content = stored value.
const keystoreVectors = "../../testdata/vectors/keystore"

// migrateOutput matches the plain output of a successful migration of n
// keys, with any number of per-second progress lines.
func migrateOutput(n int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`^Starting key migration:\n(Migrated [ \d]{5}\d keys \.\.\.\n)*Migrated %6d keys successfully!\n$`, n))
}

// TestMigrateVault migrates upstream's stored key records from an fs
// keystore to a real Vault and back to a new fs keystore: every record
// arrives byte for byte, in Vault in upstream's layout.
func TestMigrateVault(t *testing.T) {
	vectors := readKeys(t, keystoreVectors)
	if len(vectors) != 9 {
		t.Fatalf("%s holds %d records, want 9", keystoreVectors, len(vectors))
	}
	srv := vaulttest.Start(t, nil)
	srv.EnableTransit(t, "transit-mig", "kes-key")
	srv.WritePolicy(t, "kes-mig", `path "*" { capabilities = ["create", "read", "update", "delete", "list"] }`)
	srv.AppRole(t, "approle-mig", "kes", "mig-role-id", "mig-secret-id",
		map[string]any{"token_policies": "kes-mig", "token_ttl": "1h"})

	tests := []struct {
		name, engine, version, prefix string
		transit                       bool
	}{
		{name: "kv v2 prefix", engine: "kv-mig-2", version: "v2", prefix: "tenant-1"},
		{name: "kv v1 transit", engine: "kv-mig-1", version: "v1", transit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.EnableKV(t, tt.engine, tt.version)
			section := fmt.Sprintf("  vault:\n    endpoint: %s\n    engine: %s\n    version: %s\n"+
				"    approle:\n      engine: approle-mig\n      id: mig-role-id\n      secret: mig-secret-id\n",
				srv.URL(), tt.engine, tt.version)
			if tt.prefix != "" {
				section += "    prefix: " + tt.prefix + "\n"
			}
			if tt.transit {
				section += "    transit:\n      engine: transit-mig\n      key: kes-key\n"
			}
			vaultConf := migrateConfig(t, section)
			fromConf, fromDir := fsConfig(t)
			writeKeys(t, fromDir, vectors)

			// fs → Vault.
			stdout, stderr, code := cliRun(t, nil, false, "migrate", "--from", fromConf, "--to", vaultConf)
			if code != 0 || !migrateOutput(9).MatchString(stdout) {
				t.Fatalf("fs → vault: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			checkVaultRecords(t, srv, tt.engine, tt.version, tt.prefix, tt.transit, vectors)

			// A second run with --merge copies nothing; with --force it
			// overwrites every record with the same bytes.
			stdout, stderr, code = cliRun(t, nil, false, "migrate", "--merge", "--from", fromConf, "--to", vaultConf)
			if want := "Starting key migration:\nMigration succeeded! No keys migrated.\n"; code != 0 || stdout != want {
				t.Fatalf("fs → vault --merge: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			stdout, stderr, code = cliRun(t, nil, false, "migrate", "-f", "--from", fromConf, "--to", vaultConf, "vec-legacy-*")
			if code != 0 || !migrateOutput(5).MatchString(stdout) {
				t.Fatalf("fs → vault -f: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			checkVaultRecords(t, srv, tt.engine, tt.version, tt.prefix, tt.transit, vectors)

			// Vault → a new fs keystore: the files are upstream's records.
			toConf, toDir := fsConfig(t)
			stdout, stderr, code = cliRun(t, nil, false, "migrate", "--from", vaultConf, "--to", toConf)
			if code != 0 || !migrateOutput(9).MatchString(stdout) {
				t.Fatalf("vault → fs: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
			}
			if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
				t.Errorf("vault → fs: records differ from the vectors")
			}
			for name := range vectors {
				fi, err := os.Stat(filepath.Join(toDir, name))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v, mode %v", name, err, fi.Mode())
				}
			}
		})
	}
}

// checkVaultRecords reads each record from Vault with a root token, as
// upstream KES stores it: the secret at <engine>[/data]/<prefix>/<name>
// holds one field, named as the key, whose value is the stored record (or
// its transit ciphertext).
func checkVaultRecords(t *testing.T, srv *vaulttest.Server, engine, version, prefix string, transit bool, records map[string]string) {
	t.Helper()
	c := srv.Client(t)
	for name, want := range records {
		p := engine + "/" + name
		if prefix != "" {
			p = engine + "/" + prefix + "/" + name
		}
		if version == "v2" {
			p = strings.Replace(p, engine+"/", engine+"/data/", 1)
		}
		sec, err := c.Logical().Read(p)
		if err != nil || sec == nil {
			t.Fatalf("read %s: %v", p, err)
		}
		data := sec.Data
		if version == "v2" {
			data, _ = data["data"].(map[string]any)
		}
		if len(data) != 1 {
			t.Fatalf("%s: data fields %q, want one field", p, slices.Sorted(maps.Keys(data))) // names only: the values are key records
		}
		got, _ := data[name].(string)
		switch {
		case transit && !strings.HasPrefix(got, "vault:v1:"):
			t.Errorf("%s: stored value is not a transit ciphertext", p)
		case !transit && got != want:
			t.Errorf("%s: stored %q, want the record %q", p, got, want)
		}
	}
}
