package aws_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/aws"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

// TestConformance runs the store suite against kumo's Secrets Manager.
func TestConformance(t *testing.T) {
	kumo := awstest.StartKumo(t)
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		clear(t, kumo)
		return connect(t, testConfig(kumo.URL()))
	}, storetest.Options{MaxValueSize: aws.MaxValueSize})
}

// TestListManyPages lists more secrets than one ListSecrets page (100)
// holds, in store pages that do not line up with AWS's.
func TestListManyPages(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	s := connect(t, testConfig(p.URL()))
	admin := kumo.SecretsManager()
	var want []string
	for i := range 257 {
		name := fmt.Sprintf("many-%04d", i)
		want = append(want, name)
		if _, err := admin.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
			Name: awssdk.String(name), SecretString: awssdk.String("v"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A name outside the prefix sorts into the middle of AWS's pages.
	if _, err := admin.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: awssdk.String("many"), SecretString: awssdk.String("v"),
	}); err != nil {
		t.Fatal(err)
	}

	p.reset()
	names, next, err := s.List(t.Context(), "many-", "", 0)
	if err != nil || next != "" || !slices.Equal(names, want) {
		t.Fatalf("List(many-) = %d names, next %q, %v; want %d names", len(names), next, err, len(want))
	}
	// 258 secrets are three AWS pages of at most 100. (A page asked twice
	// is the SDK retrying a lost response, aws/aws-sdk-go-v2#2737.)
	var reqs []proxyRequest
	for _, r := range p.requests("ListSecrets") {
		if !slices.ContainsFunc(reqs, func(q proxyRequest) bool { return bytes.Equal(q.Body, r.Body) }) {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 3 {
		t.Fatalf("List asked for %d different ListSecrets pages, want 3", len(reqs))
	}
	for i, r := range reqs {
		if !bytes.Contains(r.Body, []byte(`"MaxResults":100`)) {
			t.Errorf("ListSecrets call %d: body %s lacks MaxResults 100", i+1, r.Body)
		}
		if hasToken := bytes.Contains(r.Body, []byte(`"NextToken"`)); hasToken != (i > 0) {
			t.Errorf("ListSecrets call %d: body %s (NextToken present: %v)", i+1, r.Body, hasToken)
		}
	}

	var got []string
	continueAt := ""
	for {
		names, next, err := s.List(t.Context(), "many-", continueAt, 64)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, names...)
		if next == "" {
			break
		}
		continueAt = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages of 64 joined = %d names, want %d", len(got), len(want))
	}
}

// TestUpstreamFormat reads secrets in exactly the form upstream KES writes
// them (the name of the key, SecretString = the stored record) and checks
// that the store writes them the same way.
func TestUpstreamFormat(t *testing.T) {
	kumo := awstest.StartKumo(t)
	s := connect(t, testConfig(kumo.URL()))
	admin := kumo.SecretsManager()

	dir := vectors.Path(t, "keystore")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no upstream key records in testdata/vectors/keystore")
	}
	for _, e := range entries {
		record, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			// Upstream's CreateSecret: Name and SecretString, nothing else.
			if _, err := admin.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
				Name: awssdk.String(name), SecretString: awssdk.String(string(record)),
			}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(t.Context(), name)
			if err != nil || !bytes.Equal(got, record) {
				t.Fatalf("Get(%s) = %q, %v; want the upstream record byte for byte", name, got, err)
			}

			// Written by us: what upstream reads (GetSecretValue by name,
			// SecretString) is the record unchanged.
			ours := "ours-" + name
			if err := s.Create(t.Context(), ours, record); err != nil {
				t.Fatal(err)
			}
			out := secretValue(t, kumo, ours)
			if awssdk.ToString(out.Name) != ours || out.SecretString == nil || *out.SecretString != string(record) || out.SecretBinary != nil {
				t.Fatalf("stored secret %s: name %q, SecretString %q, SecretBinary %q; want the record as SecretString",
					ours, awssdk.ToString(out.Name), awssdk.ToString(out.SecretString), out.SecretBinary)
			}
			if !slices.Contains(out.VersionStages, "AWSCURRENT") {
				t.Errorf("stored secret %s: version stages %q, want AWSCURRENT", ours, out.VersionStages)
			}
			d := describe(t, kumo, ours)
			if d.Description != nil || len(d.Tags) != 0 || d.KmsKeyId != nil {
				t.Errorf("stored secret %s: description %v, tags %v, kms key %v; upstream sets none of them",
					ours, d.Description, d.Tags, d.KmsKeyId)
			}
		})
	}
}

// TestRequests checks the fields of each request the store sends, as
// upstream sent them: the name as SecretId (or Name), the value as
// SecretString, KmsKeyId only when configured, ForceDeleteWithoutRecovery on
// delete, and nothing else but the SDK's idempotency token on create.
func TestRequests(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	for _, kmsKey := range []string{"", "alias/kes"} {
		c := testConfig(p.URL())
		c.KMSKey = kmsKey
		s := connect(t, c)
		p.reset()
		ctx := t.Context()
		if err := s.Create(ctx, "req-key", []byte("record")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "req-key"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.List(ctx, "", "", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "req-key"); err != nil {
			t.Fatal(err)
		}
		create := map[string]any{"Name": "req-key", "SecretString": "record", "ClientRequestToken": "*"}
		if kmsKey != "" {
			create["KmsKeyId"] = kmsKey
		}
		want := map[string]map[string]any{
			"CreateSecret":   create,
			"GetSecretValue": {"SecretId": "req-key"},
			"ListSecrets":    {"MaxResults": float64(100)},
			"DeleteSecret":   {"SecretId": "req-key", "ForceDeleteWithoutRecovery": true},
		}
		for op, fields := range want {
			reqs := p.requests(op)
			if len(reqs) != 1 {
				t.Fatalf("kmskey %q: %d %s requests, want 1", kmsKey, len(reqs), op)
			}
			var got map[string]any
			if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
				t.Fatalf("%s body %s: %v", op, reqs[0].Body, err)
			}
			if tok, ok := got["ClientRequestToken"].(string); ok && tok != "" && fields["ClientRequestToken"] == "*" {
				got["ClientRequestToken"] = "*"
			}
			if !maps.EqualFunc(got, fields, func(a, b any) bool { return a == b }) {
				t.Errorf("kmskey %q: %s body = %v, want %v", kmsKey, op, got, fields)
			}
			if ct := reqs[0].Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
				t.Errorf("%s Content-Type = %q", op, ct)
			}
		}
	}
}

// TestSecretBinary reads a secret that has only a SecretBinary, as
// upstream does, and checks that a value that is not UTF-8 (which no key
// record is) is stored as SecretBinary rather than mangled.
func TestSecretBinary(t *testing.T) {
	kumo := awstest.StartKumo(t)
	s := connect(t, testConfig(kumo.URL()))
	bin := []byte{0xff, 0x00, 0xfe, 'k'}
	if _, err := kumo.SecretsManager().CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: awssdk.String("binary"), SecretBinary: bin,
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(t.Context(), "binary"); err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("Get(binary) = %q, %v; want %q", got, err, bin)
	}
	if err := s.Create(t.Context(), "not-utf8", bin); err != nil {
		t.Fatal(err)
	}
	out := secretValue(t, kumo, "not-utf8")
	if out.SecretString != nil || !bytes.Equal(out.SecretBinary, bin) {
		t.Fatalf("stored not-utf8: SecretString %v, SecretBinary %q; want SecretBinary %q", out.SecretString, out.SecretBinary, bin)
	}
}

// TestKMSKey checks that CreateSecret carries the configured KMS key.
//
// kumo records KmsKeyId but does not encrypt with it (it talks to no KMS),
// so what is proven is: the store sends the configured key id on every
// CreateSecret (read back by DescribeSecret), and the key id and ARN forms
// it sends are ones a KMS (local-kms) issued and accepts for the
// GenerateDataKey/Decrypt calls Secrets Manager makes with the secret's
// encryption context.
func TestKMSKey(t *testing.T) {
	kumo := awstest.StartKumo(t)
	lkms := awstest.StartLocalKMS(t)
	keyID, keyARN := lkms.CreateKMSKey(t)
	if !strings.HasPrefix(keyARN, "arn:aws:kms:"+awstest.Region+":"+awstest.AccountID+":key/") || !strings.HasSuffix(keyARN, "/"+keyID) {
		t.Fatalf("local-kms key ARN %q for id %q: unexpected form", keyARN, keyID)
	}
	for _, key := range []string{keyID, keyARN} {
		t.Run(key, func(t *testing.T) {
			clear(t, kumo)
			c := testConfig(kumo.URL())
			c.KMSKey = key
			s := connect(t, c)
			if err := s.Create(t.Context(), "k", []byte("record")); err != nil {
				t.Fatal(err)
			}
			d := describe(t, kumo, "k")
			if awssdk.ToString(d.KmsKeyId) != key {
				t.Fatalf("DescribeSecret(k).KmsKeyId = %q, want %q", awssdk.ToString(d.KmsKeyId), key)
			}
			if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "record" {
				t.Fatalf("Get(k) = %q, %v", got, err)
			}

			// The same key reference works at a KMS, with the encryption
			// context Secrets Manager uses; another context is refused.
			k := lkms.KMS()
			desc, err := k.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: awssdk.String(key)})
			if err != nil {
				t.Fatalf("kms DescribeKey(%s): %v", key, err)
			}
			if awssdk.ToString(desc.KeyMetadata.Arn) != keyARN || !desc.KeyMetadata.Enabled || desc.KeyMetadata.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt {
				t.Fatalf("kms DescribeKey(%s) = %+v", key, desc.KeyMetadata)
			}
			ec := map[string]string{"SecretARN": awssdk.ToString(d.ARN), "SecretVersionId": "v1"}
			dk, err := k.GenerateDataKey(t.Context(), &kms.GenerateDataKeyInput{
				KeyId: awssdk.String(key), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: ec,
			})
			if err != nil {
				t.Fatalf("kms GenerateDataKey(%s): %v", key, err)
			}
			dec, err := k.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
			if err != nil || !bytes.Equal(dec.Plaintext, dk.Plaintext) {
				t.Fatalf("kms Decrypt with the context: %v", err)
			}
			other := map[string]string{"SecretARN": "arn:aws:secretsmanager:" + awstest.Region + ":" + awstest.AccountID + ":secret:other"}
			if _, err := k.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: other}); err == nil {
				t.Fatal("kms Decrypt with another encryption context succeeded; local-kms should refuse it")
			}
		})
	}
	// A key that does not exist is refused by the KMS, so the check above
	// would catch a malformed reference.
	if _, err := lkms.KMS().DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: awssdk.String("alias/missing")}); err == nil {
		t.Fatal("kms DescribeKey(alias/missing) succeeded")
	}
}

// TestNotFoundExists checks the error mapping of ResourceNotFoundException
// and ResourceExistsException, and that neither reads as unreachable.
func TestNotFoundExists(t *testing.T) {
	kumo := awstest.StartKumo(t)
	s := connect(t, testConfig(kumo.URL()))
	ctx := t.Context()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) {
		t.Fatalf("Get(missing): %v, want keystore.ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Delete(missing): %v, want keystore.ErrNotFound", err)
	}
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, "k", []byte("secret-value-2"))
	if !errors.Is(err, keystore.ErrExists) || keystore.IsUnreachable(err) {
		t.Fatalf("Create(k) again: %v, want keystore.ErrExists", err)
	}
	if !strings.Contains(err.Error(), `aws: create key "k"`) || strings.Contains(err.Error(), "secret-value-2") {
		t.Fatalf("Create(k) again: error %q does not name the operation, or names the value", err)
	}
}

// TestInvalidInput checks what the store refuses before asking AWS.
func TestInvalidInput(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	s := connect(t, testConfig(p.URL()))
	p.reset()
	ctx := t.Context()
	for _, name := range []string{"", "arn:aws:secretsmanager:x", "a b", "ä", strings.Repeat("a", 513)} {
		if err := s.Create(ctx, name, []byte("v")); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
		if _, err := s.Get(ctx, name); err == nil || errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q): %v, want an invalid-name error", name, err)
		}
	}
	if err := s.Create(ctx, "empty", nil); !errors.Is(err, aws.ErrEmptyValue) {
		t.Errorf("Create(empty, nil): %v, want ErrEmptyValue", err)
	}
	if err := s.Create(ctx, "big", make([]byte, aws.MaxValueSize+1)); err == nil {
		t.Error("Create of a value over 64 KiB succeeded")
	}
	if reqs := p.requests(""); len(reqs) != 0 {
		t.Fatalf("invalid input reached AWS: %d requests", len(reqs))
	}
	// The longest name AWS allows, with every byte it allows, works.
	long := strings.Repeat("aZ09/_+=.@-", 47)[:512]
	if err := s.Create(ctx, long, []byte("v")); err != nil {
		t.Fatalf("Create(512-byte name): %v", err)
	}
}

// TestUnreachable checks that a store whose endpoint does not answer
// reports it as unreachable: at Connect, and for a store whose server went
// away.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	if _, err := aws.Connect(t.Context(), testConfig(closed), nil); !keystore.IsUnreachable(err) {
		t.Fatalf("Connect(closed port): %v, want an unreachable error", err)
	}

	kumo := awstest.StartKumo(t)
	s := connect(t, testConfig(kumo.URL()))
	kumo.Stop()
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Errorf("Status after stop: %v, want unreachable", err)
	}
	if _, err := s.Get(t.Context(), "k"); !keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get after stop: %v, want unreachable", err)
	}
	if err := s.Create(t.Context(), "k", []byte("v")); !keystore.IsUnreachable(err) {
		t.Errorf("Create after stop: %v, want unreachable", err)
	}
	if _, _, err := s.List(t.Context(), "", "", 0); !keystore.IsUnreachable(err) {
		t.Errorf("List after stop: %v, want unreachable", err)
	}
}
