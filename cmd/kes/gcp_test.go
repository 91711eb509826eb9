package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/openkes/kes/internal/keystore/fake"
)

// The tests of this file run the kes binary against the in-process Secret
// Manager fake. The binary trusts the fake's test CA the way an operator
// makes KES trust a private endpoint: through the standard SSL_CERT_FILE,
// which Go reads once per process for its system roots. A child process
// reads it afresh, so nothing in the store needs a test-only way in.

// gcpEnv writes the fake's CA certificate and returns the environment that
// makes the kes binary trust it.
func gcpEnv(t *testing.T, g *fake.GCP) map[string]string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "gcp-ca.pem")
	if err := os.WriteFile(ca, g.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"SSL_CERT_FILE": ca}
}

// gcpSection is an upstream-style gcp.secretmanager section for fake g and
// service account sa. privateKey is the YAML value of private_key as given.
func gcpSection(g *fake.GCP, sa fake.GCPServiceAccount, privateKey string) string {
	return fmt.Sprintf(`  gcp:
    secretmanager:
      project_id: %s
      endpoint: %s
      scopes:
        - https://www.googleapis.com/auth/cloud-platform
      credentials:
        client_email: %s
        client_id: "%s"
        private_key_id: %s
        private_key: %s
`, g.Project, g.Endpoint(), sa.ClientEmail, sa.ClientID, sa.PrivateKeyID, privateKey)
}

// ciphertextVector is the first line of testdata/vectors/ciphertexts.jsonl
// for key.
func ciphertextVector(t *testing.T, key string) (ciphertext, context, plaintext string) {
	t.Helper()
	f, err := os.Open("../../testdata/vectors/ciphertexts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			Key        string `json:"key"`
			Ciphertext string `json:"ciphertext_b64"`
			Context    string `json:"context_b64"`
			Plaintext  string `json:"plaintext_b64"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Key == key {
			return v.Ciphertext, v.Context, v.Plaintext
		}
	}
	t.Fatalf("no ciphertext vector for %s (%v)", key, sc.Err())
	return "", "", ""
}

// TestGCPServer runs `kes server` from an upstream-style config file on the
// Secret Manager fake and uses every key operation over its TLS listener:
// a key upstream KES stored decrypts upstream's ciphertext, and the keys the
// server creates are secrets in upstream's layout.
func TestGCPServer(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{MaxPageSize: 2})
	sa := g.ServiceAccount(t, "kes")
	vectors := readKeys(t, keystoreVectors)
	g.PutSecret("vec-created-1", []byte(vectors["vec-created-1"])) // as upstream KES stored it

	dir, apiKey := newServerDir(t)
	// The private key on one line with literal \n, as a YAML single-quoted
	// scalar keeps them.
	pemOneLine := "'" + strings.ReplaceAll(sa.PrivateKey, "\n", `\n`) + "'"
	file := writeServerConfig(t, dir, apiKey.Identity(), `version: v1
log:
  audit: off
keystore:
`+gcpSection(g, sa, pemOneLine))

	lines := startKes(t, gcpEnv(t, g), "server", "--config", file)
	call := waitStoreServer(t, lines, kmsLine("GCP SecretManager: Project=kes-project"), apiKey, nil, nil).doRaw

	if code, body := call("GET", "/v1/ready", ""); code != 200 {
		t.Fatalf("ready: %d %s", code, body)
	}

	// Upstream's key and ciphertext.
	ciphertext, context, plaintext := ciphertextVector(t, "vec-created-1")
	code, body := call("PUT", "/v1/key/decrypt/vec-created-1", `{"ciphertext":"`+ciphertext+`","context":"`+context+`"}`)
	if code != 200 || !strings.Contains(body, `"plaintext":"`+plaintext+`"`) {
		t.Fatalf("decrypt upstream ciphertext: %d %s", code, body)
	}

	// Keys created here.
	for _, name := range []string{"my-key", "my-other-key", "your-key"} {
		if code, body := call("PUT", "/v1/key/create/"+name, ""); code != 200 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
	}
	if code, body := call("PUT", "/v1/key/create/my-key", ""); code != 400 || !strings.Contains(body, "key already exists") {
		t.Fatalf("create my-key again: %d %s", code, body)
	}
	versions, ok := g.Versions("my-key")
	if !ok || len(versions) != 1 || len(versions[0]) == 0 {
		t.Fatalf("secret my-key: %d versions, exists %v; want one with the key record", len(versions), ok)
	}
	var created []string
	for _, r := range g.Requests() {
		if m, ok := r.Msg.(*secretmanagerpb.CreateSecretRequest); ok {
			if m.GetParent() != "projects/kes-project" || m.GetSecret().GetReplication().GetAutomatic() == nil || len(m.GetSecret().GetLabels()) != 0 {
				t.Errorf("CreateSecret %s: %v", m.GetSecretId(), m)
			}
			created = append(created, m.GetSecretId())
		}
	}
	if want := []string{"my-key", "my-other-key", "your-key", "my-key"}; !slices.Equal(created, want) {
		t.Errorf("CreateSecret calls for %q, want %q", created, want)
	}

	code, body = call("PUT", "/v1/key/generate/my-key", `{"context":"`+encodeB64([]byte("bucket/object"))+`"}`)
	if code != 200 {
		t.Fatalf("generate: %d %s", code, body)
	}
	var dek struct{ Plaintext, Ciphertext []byte }
	if err := json.Unmarshal([]byte(body), &dek); err != nil {
		t.Fatal(err)
	}
	code, body = call("PUT", "/v1/key/decrypt/my-key",
		`{"ciphertext":"`+encodeB64(dek.Ciphertext)+`","context":"`+encodeB64([]byte("bucket/object"))+`"}`)
	if code != 200 || !strings.Contains(body, `"plaintext":"`+encodeB64(dek.Plaintext)+`"`) {
		t.Fatalf("decrypt: %d %s", code, body)
	}

	// Listing pages through the fake's pages of two.
	list := func(prefix string) []string {
		t.Helper()
		code, body := call("GET", "/v1/key/list/"+prefix, "")
		var l struct{ Names []string }
		if code != 200 || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("list %s: %d %s", prefix, code, body)
		}
		return l.Names
	}
	if got, want := list("*"), []string{"my-key", "my-other-key", "vec-created-1", "your-key"}; !slices.Equal(got, want) {
		t.Errorf("list *: %q, want %q", got, want)
	}
	if got, want := list("my"), []string{"my-key", "my-other-key"}; !slices.Equal(got, want) {
		t.Errorf("list my: %q, want %q", got, want)
	}

	if code, body := call("DELETE", "/v1/key/delete/my-key", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if _, ok := g.Versions("my-key"); ok {
		t.Error("secret my-key still exists after delete")
	}
	if code, body := call("GET", "/v1/key/describe/my-key", ""); code != 404 {
		t.Fatalf("describe deleted key: %d %s", code, body)
	}
	if code, body := call("DELETE", "/v1/key/delete/my-key", ""); code != 404 || !strings.Contains(body, "key does not exist") {
		t.Fatalf("delete again: %d %s", code, body)
	}
	if got, want := list("*"), []string{"my-other-key", "vec-created-1", "your-key"}; !slices.Equal(got, want) {
		t.Errorf("list * after delete: %q, want %q", got, want)
	}
}

// TestMigrateGCP migrates upstream's stored key records from an fs keystore
// to the Secret Manager fake and back to a new fs keystore: every record
// arrives byte for byte, in Secret Manager as version 1 of a secret named
// as the key.
func TestMigrateGCP(t *testing.T) {
	vectors := readKeys(t, keystoreVectors)
	if len(vectors) != 9 {
		t.Fatalf("%s holds %d records, want 9", keystoreVectors, len(vectors))
	}
	g := fake.StartGCP(t, fake.GCPOptions{MaxPageSize: 4})
	sa := g.ServiceAccount(t, "kes-migrate")
	env := gcpEnv(t, g)
	// The private key from the environment, as the docs suggest.
	env["GCP_PRIVATE_KEY"] = sa.PrivateKey
	gcpConf := migrateConfig(t, gcpSection(g, sa, "${GCP_PRIVATE_KEY}"))
	fromConf, fromDir := fsConfig(t)
	writeKeys(t, fromDir, vectors)

	stdout, stderr, code := kesExec(t, env, "", "migrate", "--from", fromConf, "--to", gcpConf)
	if code != 0 || !migrateOutput(9).MatchString(stdout) {
		t.Fatalf("fs → gcp: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	for name, want := range vectors {
		versions, ok := g.Versions(name)
		if !ok || len(versions) != 1 || string(versions[0]) != want {
			t.Errorf("secret %s: exists %v, %d versions; want version 1 = the record", name, ok, len(versions))
		}
	}

	stdout, stderr, code = kesExec(t, env, "", "migrate", "--merge", "--from", fromConf, "--to", gcpConf)
	if want := "Starting key migration:\nMigration succeeded! No keys migrated.\n"; code != 0 || stdout != want {
		t.Fatalf("fs → gcp --merge: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	toConf, toDir := fsConfig(t)
	stdout, stderr, code = kesExec(t, env, "", "migrate", "--from", gcpConf, "--to", toConf)
	if code != 0 || !migrateOutput(9).MatchString(stdout) {
		t.Fatalf("gcp → fs: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
		t.Errorf("gcp → fs: records differ from the vectors")
	}
}
