package secretscan_test

import (
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/secretscan"
	"github.com/openkes/kes/internal/vectors"
)

func load(t *testing.T) *secretscan.Scanner {
	t.Helper()
	root, err := secretscan.Root()
	if err != nil {
		t.Fatal(err)
	}
	s, err := secretscan.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScan: every form a fixture secret is printed in is found, and the
// finding's line no longer holds it; what is not secret passes.
func TestScan(t *testing.T) {
	type keyLine struct {
		KeyB64     string `json:"key_b64"`
		HMACKeyB64 string `json:"hmac_key_b64"`
	}
	type apiKeyLine struct {
		APIKey string `json:"api_key"`
		ID     string `json:"identity"`
	}
	keys := vectors.ReadJSONL[keyLine](t, "keys.jsonl")
	apiKeys := vectors.ReadJSONL[apiKeyLine](t, "identities/apikeys.jsonl")
	master, _ := base64.StdEncoding.DecodeString(keys[0].KeyB64)
	hmacKey, _ := base64.StdEncoding.DecodeString(keys[0].HMACKeyB64)
	pemKey := strings.Split(string(vectors.ReadFile(t, "identities/ed25519.key")), "\n")[1]

	secrets := map[string]string{
		"master key in base64":   "msg=\"decrypt\" key=" + keys[0].KeyB64,
		"master key in hex":      "key: " + hex.EncodeToString(master),
		"HMAC key in base64url":  base64.RawURLEncoding.EncodeToString(hmacKey),
		"API key":                "error: bad key " + apiKeys[1].APIKey,
		"API key without prefix": strings.TrimPrefix(apiKeys[2].APIKey, "kes:v1:"),
		"generated API key":      "kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
		"vault token":            `{"auth":{"client_token":"hvs.CAESIJ3aTzY0m5vQ9f1k2Wm8rTbq"}}`,
		"vault root token":       "X-Vault-Token: openkes-test-root",
		"approle secret id":      "secret_id=secret-id-3-do-not-log",
		"pem body":               pemKey,
		"pem header":             "-----BEGIN EC PRIVATE KEY-----",
	}
	s := load(t)
	for name, line := range secrets {
		f, ok := s.ScanLine(line)
		if !ok {
			t.Errorf("%s: not found in %q", name, line)
			continue
		}
		if _, again := s.ScanLine(f.Line); again || !strings.Contains(f.Line, "<secret: ") {
			t.Errorf("%s: the finding's line %q still holds a secret", name, f.Line)
		}
	}
	for _, line := range []string{
		"api key kes:v1:<redacted>",
		"identity " + apiKeys[0].ID,
		`{"message":"key does not exist"}`,
		"SecretKey(AES256)",
		"hvs.short",
	} {
		if f, ok := s.ScanLine(line); ok {
			t.Errorf("%q: found %s", line, f.Name)
		}
	}
	if got := s.Scan("one\n" + secrets["API key"] + "\ntwo " + secrets["vault token"] + "\nthree"); len(got) != 2 {
		t.Errorf("Scan found %d lines, want 2: %q", len(got), got)
	}
}

// TestAdd: secrets a test adds are found; short values are ignored (they
// would match by chance).
func TestAdd(t *testing.T) {
	var s secretscan.Scanner
	s.Add(secretscan.Secret{Name: "token", Value: "s3cr3t-t0ken"}, secretscan.Secret{Name: "short", Value: "abc"})
	if _, ok := s.ScanLine("auth s3cr3t-t0ken"); !ok {
		t.Error("added secret not found")
	}
	if f, ok := s.ScanLine("abc"); ok {
		t.Errorf("short secret found: %v", f)
	}
}

// TestCanariesUsed: each canary is still a literal of some Go file, so
// that a renamed fixture secret is not silently left unchecked.
func TestCanariesUsed(t *testing.T) {
	root, err := secretscan.Root()
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && filepath.Base(filepath.Dir(path)) != "secretscan" {
			b, err := os.ReadFile(path)
			tests.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range secretscan.Canaries {
		if !strings.Contains(tests.String(), c.Value) {
			t.Errorf("canary %s %q is in no Go file", c.Name, c.Value)
		}
	}
}
