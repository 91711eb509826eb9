package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/crypto"
)

// awsSection is the keystore section of an upstream config file for AWS
// Secrets Manager at kumo, with the test's static credentials and, if
// kmsKey is set, a KMS key for new secrets.
func awsSection(kumo *awstest.Server, kmsKey string) string {
	s := fmt.Sprintf("  aws:\n    secretsmanager:\n      endpoint: %s\n      region: %s\n", kumo.URL(), awstest.Region)
	if kmsKey != "" {
		s += "      kmskey: " + kmsKey + "\n"
	}
	return s + fmt.Sprintf("      credentials:\n        accesskey: %s\n        secretkey: %s\n        token: \"\"\n",
		awstest.AccessKey, awstest.SecretKey)
}

// awsSecret reads the secret name from kumo behind the server's back: its
// SecretString and KmsKeyId. ok is false if kumo holds no such secret.
func awsSecret(t *testing.T, kumo *awstest.Server, name string) (value, kmsKey string, ok bool) {
	t.Helper()
	c := kumo.SecretsManager()
	out, err := c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(name)})
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); missing {
		return "", "", false
	}
	if err != nil {
		t.Fatalf("GetSecretValue(%s): %v", name, err)
	}
	if out.SecretBinary != nil {
		t.Fatalf("%s: SecretBinary set; upstream stores the record as SecretString", name)
	}
	d, err := c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(name)})
	if err != nil {
		t.Fatalf("DescribeSecret(%s): %v", name, err)
	}
	return awssdk.ToString(out.SecretString), awssdk.ToString(d.KmsKeyId), true
}

// TestAWSServer starts a server from an upstream config file for AWS
// Secrets Manager (kumo, a real process) and uses it over its TLS listener:
// create, generate, decrypt, list, delete. The banner names the endpoint;
// every key is a secret of its name whose SecretString is its key record,
// encrypted under the configured KMS key; delete removes it at once.
func TestAWSServer(t *testing.T) {
	kumo := awstest.StartKumo(t)
	const kmsKey = "alias/kes"
	srv := startStoreServer(t, awsSection(kumo, kmsKey), "AWS SecretsManager: "+kumo.URL(), kumo.Log)
	call := srv.call

	call("GET", "/v1/ready", nil) // the store's status probe reaches kumo
	for _, name := range []string{"key-1", "key-2"} {
		call("POST", "/v1/key/create/"+name, nil)
		record, key, ok := awsSecret(t, kumo, name)
		if !ok {
			t.Fatalf("%s not stored in Secrets Manager", name)
		}
		k, err := crypto.ParseKey([]byte(record))
		if err != nil {
			t.Fatalf("%s: SecretString is not a key record: %v", name, err)
		}
		if k.CreatedBy != srv.admin.String() {
			t.Fatalf("%s: record created by %q, want the admin %q", name, k.CreatedBy, srv.admin)
		}
		k.Destroy()
		if key != kmsKey {
			t.Fatalf("%s: KmsKeyId = %q, want the file's kmskey %q", name, key, kmsKey)
		}
	}
	srv.checkDEK("key-1")
	if list := srv.listKeys("key-*"); !slices.Equal(list, []string{"key-1", "key-2"}) {
		t.Fatalf("list = %q", list)
	}
	call("DELETE", "/v1/key/delete/key-2", nil)
	if _, _, ok := awsSecret(t, kumo, "key-2"); ok {
		t.Fatal("key-2 still in Secrets Manager after delete")
	}
	if list := srv.listKeys("key-*"); !slices.Equal(list, []string{"key-1"}) {
		t.Fatalf("list after delete = %q", list)
	}
}

// TestMigrateAWS migrates upstream's stored key records from an fs keystore
// to AWS Secrets Manager (kumo) and back to a new fs keystore: each record
// is the SecretString of the secret of its name, byte for byte, and comes
// back unchanged.
func TestMigrateAWS(t *testing.T) {
	vectors := readKeys(t, keystoreVectors)
	if len(vectors) != 9 {
		t.Fatalf("%s holds %d records, want 9", keystoreVectors, len(vectors))
	}
	kumo := awstest.StartKumo(t)
	awsConf := migrateConfig(t, awsSection(kumo, ""))
	fromConf, fromDir := fsConfig(t)
	writeKeys(t, fromDir, vectors)

	stdout, stderr, code := cliRun(t, nil, false, "migrate", "--from", fromConf, "--to", awsConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("fs → aws: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	for name, want := range vectors {
		got, key, ok := awsSecret(t, kumo, name)
		if !ok || got != want {
			t.Errorf("%s: SecretString %q, want the record %q", name, got, want)
		}
		if key != "" {
			t.Errorf("%s: KmsKeyId = %q without a kmskey in the file", name, key)
		}
	}

	// A second run with --merge finds every key there and copies nothing.
	stdout, stderr, code = cliRun(t, nil, false, "migrate", "--merge", "--from", fromConf, "--to", awsConf)
	if want := "Starting key migration:\nMigration succeeded! No keys migrated.\n"; code != 0 || stdout != want {
		t.Fatalf("fs → aws --merge: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	toConf, toDir := fsConfig(t)
	stdout, stderr, code = cliRun(t, nil, false, "migrate", "--from", awsConf, "--to", toConf)
	if code != 0 || !migrateOutput(len(vectors)).MatchString(stdout) {
		t.Fatalf("aws → fs: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if got := readKeys(t, toDir); !mapsEqual(got, vectors) {
		t.Errorf("aws → fs: records differ from the vectors")
	}
}
