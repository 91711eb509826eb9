package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/kmiptest"
)

// kmipSection is the keystore section of a config file for the KMIP
// server srv, with its client certificate.
func kmipSection(srv *kmiptest.Server) string {
	return fmt.Sprintf("  kmip:\n    endpoint: %s\n    tls:\n      key: %s\n      cert: %s\n      ca: %s\n",
		srv.Addr, srv.Client.KeyFile, srv.Client.CertFile, srv.CA.File)
}

// TestKMIP runs kes against one real pykmip-server (a start costs
// seconds of Python): kes migrate to and from it, then a server on it.
func TestKMIP(t *testing.T) {
	srv := kmiptest.Start(t)
	t.Run("Migrate", func(t *testing.T) { testMigrateKMIP(t, srv) })
	t.Run("Server", func(t *testing.T) { testKMIPServer(t, srv) })
}

// testMigrateKMIP migrates upstream's stored key records from an fs
// keystore to the KMIP server and back to a new fs keystore: each record
// is the key material of the one Secret Data object of its name, byte for
// byte, and comes back unchanged. The keys stay (names vec-*).
func testMigrateKMIP(t *testing.T, srv *kmiptest.Server) {
	vectors := readKeys(t, keystoreVectors)
	if len(vectors) != 9 {
		t.Fatalf("%s holds %d records, want 9", keystoreVectors, len(vectors))
	}
	kmipConf := migrateConfig(t, kmipSection(srv))
	fromConf, fromDir := fsConfig(t)
	writeKeys(t, fromDir, vectors)

	stdout, stderr, code := cliRun(t, nil, false, "migrate", "--from", fromConf, "--to", kmipConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("fs → kmip: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	for name, want := range vectors {
		if got := srv.Secrets(t, name); len(got) != 1 || string(got[0]) != want {
			t.Errorf("%s: objects hold %q, want one with the record %q", name, got, want)
		}
	}

	// A second run with --merge finds every key there and copies nothing.
	stdout, stderr, code = cliRun(t, nil, false, "migrate", "--merge", "--from", fromConf, "--to", kmipConf)
	if want := "Starting key migration:\nMigration succeeded! No keys migrated.\n"; code != 0 || stdout != want {
		t.Fatalf("fs → kmip --merge: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	// With --force it replaces every legacy record with the same bytes.
	stdout, stderr, code = cliRun(t, nil, false, "migrate", "-f", "--from", fromConf, "--to", kmipConf, "vec-legacy-*")
	if code != 0 || !migrateOutput(5).MatchString(stdout) {
		t.Fatalf("fs → kmip -f: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	toConf, toDir := fsConfig(t)
	stdout, stderr, code = cliRun(t, nil, false, "migrate", "--from", kmipConf, "--to", toConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("kmip → fs: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
		t.Errorf("kmip → fs: records differ from the vectors")
	}

}

// testKMIPServer starts a server on the KMIP server and uses it over its
// TLS listener: create, generate, decrypt, list, delete. The banner names
// the endpoint; every key is one Secret Data object named after it whose
// key material is its key record; delete destroys it. With the KMIP
// server stopped, status and readiness say the store is unreachable.
func testKMIPServer(t *testing.T, srv *kmiptest.Server) {
	node := startStoreServer(t, kmipSection(srv), "KMIP: "+srv.Addr, srv.Log)
	do, call, decode := node.do, node.call, node.decode

	call("GET", "/v1/ready", nil) // the store's status probe reaches pykmip
	var status struct {
		Unreachable bool `json:"keystore_unreachable"`
	}
	decode(call("GET", "/v1/status", nil), &status)
	if status.Unreachable {
		t.Fatalf("status: the store is unreachable")
	}
	for _, name := range []string{"key-1", "key-2"} {
		call("POST", "/v1/key/create/"+name, nil)
		records := srv.Secrets(t, name)
		if len(records) != 1 {
			t.Fatalf("%s: %d objects carry the name, want 1", name, len(records))
		}
		k, err := crypto.ParseKey(records[0])
		if err != nil {
			t.Fatalf("%s: the key material is not a key record: %v", name, err)
		}
		if k.CreatedBy != node.admin.String() {
			t.Fatalf("%s: record created by %q, want the admin %q", name, k.CreatedBy, node.admin)
		}
		k.Destroy()
	}
	if code, b := do("POST", "/v1/key/create/key-1", nil); code != http.StatusBadRequest || !strings.Contains(string(b), "key already exists") {
		t.Fatalf("create of an existing key: %d %s", code, b)
	}
	node.checkDEK("key-1")
	if list := node.listKeys("key-*"); !slices.Equal(list, []string{"key-1", "key-2"}) {
		t.Fatalf("list = %q", list)
	}
	call("DELETE", "/v1/key/delete/key-2", nil)
	if got := srv.Secrets(t, "key-2"); len(got) != 0 {
		t.Fatal("key-2 still on the KMIP server after delete")
	}
	// The delete was soft (the default): its copy, under a tombstone name
	// the KMIP server holds too, restores key-2 with its key material;
	// purge then destroys both.
	var deleted []kes.DeletedKey
	decode(call("GET", "/v1/key/deleted/list/key-", nil), &struct{ Keys *[]kes.DeletedKey }{&deleted})
	if len(deleted) != 1 || deleted[0].Name != "key-2" {
		t.Fatalf("deleted keys: %+v", deleted)
	}
	call("PUT", "/v1/key/restore/key-2", nil)
	if got := srv.Secrets(t, "key-2"); len(got) != 1 {
		t.Fatalf("key-2 after restore: %d objects, want 1", len(got))
	}
	call("DELETE", "/v1/key/purge/key-2", nil)
	if got := srv.Secrets(t, "key-2"); len(got) != 0 {
		t.Fatal("key-2 still on the KMIP server after purge")
	}
	decode(call("GET", "/v1/key/deleted/list/key-", nil), &struct{ Keys *[]kes.DeletedKey }{&deleted})
	if len(deleted) != 0 {
		t.Fatalf("deleted keys after purge: %+v", deleted)
	}
	if list := node.listKeys("key-*"); !slices.Equal(list, []string{"key-1"}) {
		t.Fatalf("list after delete = %q", list)
	}

	srv.Stop()
	if code, b := do("GET", "/v1/ready", nil); code != http.StatusGatewayTimeout || !strings.Contains(string(b), "key store is not reachable") {
		t.Fatalf("ready with the KMIP server down: %d %s", code, b)
	}
	decode(call("GET", "/v1/status", nil), &status)
	if !status.Unreachable {
		t.Fatalf("status with the KMIP server down: the store is reachable")
	}
}
