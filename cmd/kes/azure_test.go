package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/stores"
)

// The service principal the Azure fake accepts.
const (
	azureTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	azureClient = "0d2b7bd4-5d3e-4c4b-9a36-7c8f1d2e3f40"
	azureSecret = "kes~test.client-secret"
)

// azureFake starts a Key Vault + Microsoft Entra fake and returns it with
// the key store table that reaches it.
//
// An upstream config file names the vault (https://kes-test.vault.azure.net)
// and the service principal, nothing else: Microsoft Entra is the public
// cloud's and the certificates are checked against the system roots. The
// table's azure.keyvault entry decodes the file as stores.All does and
// then sets the two fields azure.Config documents for tests: the fake's
// authority host and its HTTP client, which trusts the fake's CA and dials
// its loopback listener whatever host a URL names. The vault keeps its real
// host name, so the SDK's check that the bearer challenge's resource
// belongs to the vault's domain stays on.
func azureFake(t *testing.T) (*fake.Azure, []config.Backend) {
	t.Helper()
	f := fake.NewAzure(t, azureTenant, azureClient, azureSecret)
	client := f.Client()
	t.Cleanup(client.CloseIdleConnections)
	table := slices.Clone(stores.All)
	found := false
	for i, b := range table {
		if b.Name != "azure.keyvault" {
			continue
		}
		found = true
		decode := b.Decode
		table[i].Decode = func(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
			ks, err := decode(d, path, key, val)
			if err != nil {
				return nil, err
			}
			a, ok := ks.(*stores.Azure)
			if !ok {
				return nil, fmt.Errorf("azure.keyvault decodes into %T, want *stores.Azure", ks)
			}
			a.Config.AuthorityHost = f.AuthorityHost()
			a.Config.Transport = client
			return a, nil
		}
	}
	if !found {
		t.Fatal("stores.All has no azure.keyvault entry")
	}
	return f, table
}

// azureSection is an upstream-style azure.keyvault section for the fake.
func azureSection(f *fake.Azure) string {
	return fmt.Sprintf("  azure:\n    keyvault:\n      endpoint: %s\n"+
		"      credentials:\n        tenant_id: %s\n        client_id: %s\n        client_secret: %s\n",
		f.VaultURL(), azureTenant, azureClient, azureSecret)
}

// azureRecord returns the value of the oldest version of secret name: the
// key record, as upstream KES reads it.
func azureRecord(f *fake.Azure, name string) (string, bool) {
	v := f.Versions(name)
	if len(v) == 0 {
		return "", false
	}
	return v[0].Value, true
}

// TestAzureServer starts a server from an upstream config file for
// azure.keyvault and uses it over its TLS listener: create, generate,
// decrypt, list, delete. Every key is a secret named as the key whose one
// version holds the key record, and a deleted key is purged.
func TestAzureServer(t *testing.T) {
	f, table := azureFake(t)
	dir, apiKey := newServerDir(t)
	file := writeServerConfig(t, dir, apiKey.Identity(), "log:\n  audit: off\nkeystore:\n"+azureSection(f))
	lines, stderr := startCmdEnv(t, &Env{KeyStores: table}, "server", "--config", file)
	srv := waitStoreServer(t, lines, kmsLine("Azure KeyVault: "+f.VaultURL()), apiKey, stderr, nil)
	call, ok := srv.do, srv.call

	ok("GET", "/v1/ready", nil)
	for _, name := range []string{"key-1", "key-2"} {
		ok("POST", "/v1/key/create/"+name, nil)
		// Upstream's record: the key's protobuf encoding in base64 text,
		// stored as the value string with no content type.
		v := f.Versions(name)
		if len(v) != 1 || v[0].ContentType != "" {
			t.Fatalf("%s at the vault: %+v, want one version and no content type", name, v)
		}
		if b, err := base64.StdEncoding.DecodeString(v[0].Value); err != nil || len(b) == 0 {
			t.Fatalf("%s at the vault: value %q is not a base64 key record", name, v[0].Value)
		}
	}
	if code, b := call("POST", "/v1/key/create/key-1", nil); code != http.StatusBadRequest || !strings.Contains(string(b), "key already exists") {
		t.Fatalf("create key-1 again: %d %s", code, b)
	}
	srv.checkDEK("key-1")
	if list := srv.listKeys("key-*"); !slices.Equal(list, []string{"key-1", "key-2"}) {
		t.Fatalf("list = %q", list)
	}
	ok("DELETE", "/v1/key/delete/key-2", nil)
	if _, stored := azureRecord(f, "key-2"); stored || f.SoftDeleted("key-2") {
		t.Fatal("key-2 still stored (or only soft-deleted) at the vault after delete")
	}
	if code, b := call("GET", "/v1/key/describe/key-2", nil); code != http.StatusNotFound {
		t.Fatalf("describe deleted key-2: %d %s", code, b)
	}

	// Every vault call carried a token the fake issued to the service
	// principal of the file.
	tokens := f.TokenRequests()
	if len(tokens) == 0 {
		t.Fatal("no token request at the fake's Microsoft Entra")
	}
	for _, r := range tokens {
		if r.Path != "/"+azureTenant+"/oauth2/v2.0/token" || r.Form.Get("client_id") != azureClient ||
			r.Form.Get("grant_type") != "client_credentials" || !slices.Contains(strings.Fields(r.Form.Get("scope")), fake.AzureResource+"/.default") {
			t.Errorf("token request %s %v", r.Path, r.Form)
		}
	}
	for _, r := range f.VaultRequests() {
		if r.APIVersion != fake.AzureAPIVersion || !strings.HasPrefix(r.Auth, "Bearer ") {
			t.Errorf("vault request %s %s: api-version %q, auth %q", r.Method, r.Path, r.APIVersion, r.Auth[:min(len(r.Auth), 7)])
		}
	}
}

// TestMigrateAzure migrates upstream's stored key records from an fs
// keystore to Azure Key Vault and back to a new fs keystore: every record
// arrives byte for byte, at the vault as the one version of the secret
// named as the key, with no content type, as upstream stores it.
func TestMigrateAzure(t *testing.T) {
	vectors := readKeys(t, keystoreVectors)
	if len(vectors) != 9 {
		t.Fatalf("%s holds %d records, want 9", keystoreVectors, len(vectors))
	}
	f, table := azureFake(t)
	migrate := func(from, to string) (string, string, int) {
		var out, errOut bytes.Buffer
		env := &Env{
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
			Getenv:    func(string) string { return "" },
			LookupEnv: func(string) (string, bool) { return "", false },
			KeyStores: table,
		}
		code := run(t.Context(), env, []string{"migrate", "--from", from, "--to", to})
		return out.String(), errOut.String(), code
	}

	storeConf := migrateConfig(t, azureSection(f))
	fromConf, fromDir := fsConfig(t)
	writeKeys(t, fromDir, vectors)
	stdout, stderr, code := migrate(fromConf, storeConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("fs → azure: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	for name, want := range vectors {
		v := f.Versions(name)
		if len(v) != 1 || v[0].Value != want || v[0].ContentType != "" {
			t.Errorf("%s at the vault: %d versions %+v, want one holding the record %q", name, len(v), v, want)
		}
	}

	toConf, toDir := fsConfig(t)
	stdout, stderr, code = migrate(storeConf, toConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("azure → fs: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
		t.Errorf("azure → fs: records differ from the vectors")
	}
	if strings.Contains(stdout+stderr, azureSecret) {
		t.Error("migrate printed the client secret")
	}
}
