package main

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/openkes/kes/internal/keystore/fake"
)

// vendorStore is a REST vendor store served by its fake: the keystore
// section of an upstream config file for it, and how to read back a record
// as the vendor holds it.
type vendorStore struct {
	name, banner string // banner: the KMS line's prefix
	section      func(t *testing.T) string
	record       func(name string) ([]byte, bool)
}

func vendorStores(t *testing.T) []vendorStore {
	f, g, e := fake.NewFortanix(t), fake.NewGemalto(t), fake.NewEntrust(t)
	return []vendorStore{
		{"fortanix", "Fortanix SDKMS: https://127.0.0.1:", func(t *testing.T) string {
			return fmt.Sprintf("  fortanix:\n    sdkms:\n      endpoint: %s\n      group_id: kes-group\n"+
				"      credentials:\n        key: %s\n      tls:\n        ca: %s\n", f.URL(), fake.FortanixAPIKey, f.CAFile(t))
		}, func(name string) ([]byte, bool) {
			o, ok := f.Object(name)
			return o.Value, ok
		}},
		{"gemalto", "Gemalto KeySecure: https://127.0.0.1:", func(t *testing.T) string {
			return fmt.Sprintf("  gemalto:\n    keysecure:\n      endpoint: %s\n"+
				"      credentials:\n        token: %s\n        domain: root\n        retry: 15s\n      tls:\n        ca: %s\n",
				g.URL(), fake.GemaltoRefreshToken, g.CAFile(t))
		}, func(name string) ([]byte, bool) {
			s, ok := g.Secret(name)
			return []byte(s.Material), ok
		}},
		{"entrust", "Entrust KeyControl: https://127.0.0.1:", func(t *testing.T) string {
			return fmt.Sprintf("  entrust:\n    keycontrol:\n      endpoint: %s\n      vault_id: %s\n      box_id: %s\n"+
				"      credentials:\n        username: %s\n        password: %s\n      tls:\n        ca: %s\n",
				e.URL(), fake.EntrustVaultID, fake.EntrustBoxName, fake.EntrustUser, fake.EntrustPassword, e.CAFile(t))
		}, func(name string) ([]byte, bool) {
			s, ok := e.Secret(name)
			return s.Data, ok
		}},
	}
}

// TestVendorServer starts a server from an upstream config file for each
// REST vendor store and uses it: create, generate, decrypt, list, delete.
func TestVendorServer(t *testing.T) {
	for _, vs := range vendorStores(t) {
		t.Run(vs.name, func(t *testing.T) {
			dir, apiKey := newServerDir(t)
			file := writeServerConfig(t, dir, apiKey.Identity(), "log:\n  audit: off\nkeystore:\n"+vs.section(t))
			lines, stderr := startCmd(t, "server", "--config", file)
			srv := waitStoreServer(t, lines, regexp.MustCompile(`^KMS\s+`+regexp.QuoteMeta(vs.banner)+`\d+$`), apiKey, stderr, nil)
			call := srv.call
			for _, name := range []string{"key-1", "key-2"} {
				call("POST", "/v1/key/create/"+name, nil)
				if _, ok := vs.record(name); !ok {
					t.Fatalf("%s not stored at the vendor", name)
				}
			}
			srv.checkDEK("key-1")
			if list := srv.listKeys("key-*"); !slices.Equal(list, []string{"key-1", "key-2"}) {
				t.Fatalf("list = %q", list)
			}
			call("DELETE", "/v1/key/delete/key-2", nil)
			if _, ok := vs.record("key-2"); ok {
				t.Fatal("key-2 still stored at the vendor after delete")
			}
		})
	}
}

// TestMigrateVendors migrates upstream's stored key records from an fs
// keystore to each REST vendor store and back to a new fs keystore: every
// record arrives byte for byte, at the vendor in upstream's layout.
func TestMigrateVendors(t *testing.T) {
	vectors := readKeys(t, keystoreVectors)
	for _, vs := range vendorStores(t) {
		t.Run(vs.name, func(t *testing.T) {
			storeConf := migrateConfig(t, vs.section(t))
			fromConf, fromDir := fsConfig(t)
			writeKeys(t, fromDir, vectors)
			stdout, stderr, code := cliRun(t, nil, false, "migrate", "--from", fromConf, "--to", storeConf)
			if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
				t.Fatalf("fs → %s: exit %d\nstdout %q\nstderr %q", vs.name, code, stdout, stderr)
			}
			for name, want := range vectors {
				if got, ok := vs.record(name); !ok || string(got) != want {
					t.Errorf("%s: stored %q, want the record %q", name, got, want)
				}
			}
			toConf, toDir := fsConfig(t)
			stdout, stderr, code = cliRun(t, nil, false, "migrate", "--from", storeConf, "--to", toConf)
			if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
				t.Fatalf("%s → fs: exit %d\nstdout %q\nstderr %q", vs.name, code, stdout, stderr)
			}
			if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
				t.Errorf("%s → fs: records differ from the vectors", vs.name)
			}
		})
	}
}
