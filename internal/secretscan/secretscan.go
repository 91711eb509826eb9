// Package secretscan finds secrets in text that must never hold one: log
// lines, error bodies and the output of the test suites.
//
// A [Scanner] knows two kinds of secret. Fixture secrets are the values the
// repository's tests use: the master and HMAC keys and the API keys of the
// upstream vectors (testdata/vectors), their private keys, the root token of
// the Vault test servers and the AppRole secret IDs the tests configure.
// Patterns catch secrets no fixture names: API keys ("kes:v1:" and 44
// base64 characters), Vault service, batch and recovery tokens, and PEM
// private keys.
//
// It is used by the api test harness (in-process) and by
// internal/tools/secretscan, which scripts/test.sh runs over the output of
// the whole suite. It imports only the standard library.
package secretscan

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Canaries are fixture secrets set in test code, not in testdata: each is a
// literal of a Go file of the tests (TestCanariesUsed checks that they still
// are).
var Canaries = []Secret{
	{"vault root token", "openkes-test-root"}, // vaulttest.RootToken
	{"approle secret id", "kes-secret-id"},    // cmd/kes vault_test.go
	{"approle secret id", "mig-secret-id"},    // cmd/kes migrate_vault_test.go
	{"approle secret id", "-do-not-log"},      // internal/keystore/vault: secret-id-N-do-not-log
}

// patterns catch secrets that no fixture names.
var patterns = []struct {
	name string
	re   *regexp.Regexp
}{
	{"API key", regexp.MustCompile(`kes:v1:[A-Za-z0-9+/]{43}[A-Za-z0-9+/=]`)},
	{"vault token", regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`)},
	{"private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
}

// Secret is one secret value and what it is.
type Secret struct {
	Name  string // what the secret is, for the report; never the value
	Value string
}

// Scanner finds secrets in text. The zero value knows only the patterns;
// [Load] adds the fixtures. A Scanner is safe for concurrent use once made.
type Scanner struct {
	secrets []Secret
}

// Finding is one secret found.
type Finding struct {
	Name string // the secret's name
	Line string // the line with every secret replaced by <secret: name>
}

// Load returns a scanner of the fixture secrets of the repository at root
// (the folder of go.mod; [Root] finds it) and the patterns.
func Load(root string) (*Scanner, error) {
	s := &Scanner{secrets: append([]Secret(nil), Canaries...)}
	vec := filepath.Join(root, "testdata", "vectors")
	type keyLine struct {
		Key        string  `json:"key"`
		KeyB64     string  `json:"key_b64"`
		HMACKeyB64 *string `json:"hmac_key_b64"`
	}
	err := readJSONL(filepath.Join(vec, "keys.jsonl"), func(k keyLine) error {
		if err := s.addBytes("master key "+k.Key, k.KeyB64); err != nil {
			return err
		}
		if k.HMACKeyB64 != nil {
			return s.addBytes("HMAC key "+k.Key, *k.HMACKeyB64)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	type apiKeyLine struct {
		APIKey string `json:"api_key"`
	}
	err = readJSONL(filepath.Join(vec, "identities", "apikeys.jsonl"), func(k apiKeyLine) error {
		s.add("API key", k.APIKey)
		s.add("API key", strings.TrimPrefix(k.APIKey, "kes:v1:")) // without its prefix
		return nil
	})
	if err != nil {
		return nil, err
	}
	pems, err := filepath.Glob(filepath.Join(vec, "identities", "*.key"))
	if err != nil {
		return nil, err
	}
	for _, file := range pems {
		if err := s.addPEMBody(file); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// add records a secret. Values under 8 bytes would match by chance.
func (s *Scanner) add(name, value string) {
	if len(value) >= 8 {
		s.secrets = append(s.secrets, Secret{name, value})
	}
}

// addBytes records the standard base64 key b64 in the forms key bytes are
// printed in: base64 (standard and URL, without the last characters that
// padding changes) and hex.
func (s *Scanner) addBytes(name, b64 string) error {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("secretscan: %s: %w", name, err)
	}
	std := base64.RawStdEncoding.EncodeToString(b)
	std = std[:len(std)*9/10]
	s.add(name+" (base64)", std)
	s.add(name+" (base64url)", base64.RawURLEncoding.EncodeToString(b)[:len(std)])
	s.add(name+" (hex)", hex.EncodeToString(b))
	s.add(name+" (hex)", strings.ToUpper(hex.EncodeToString(b)))
	return nil
}

// addPEMBody records the longest base64 line of a PEM private key file.
func (s *Scanner) addPEMBody(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("secretscan: %w", err)
	}
	longest := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "-----") && len(line) > len(longest) {
			longest = line
		}
	}
	s.add("private key "+filepath.Base(file), longest)
	return nil
}

func readJSONL[T any](file string, fn func(T) error) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("secretscan: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("secretscan: %s: %w", file, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("secretscan: %s: %w", file, err)
	}
	return nil
}

// Add records more secrets, such as the keys a test generated. Call it
// before sharing s between goroutines.
func (s *Scanner) Add(secrets ...Secret) {
	for _, sec := range secrets {
		s.add(sec.Name, sec.Value)
	}
}

// Scan returns a finding for every line of text that holds a secret.
func (s *Scanner) Scan(text string) []Finding {
	var found []Finding
	for line := range strings.Lines(text) {
		if f, ok := s.ScanLine(line); ok {
			found = append(found, f)
		}
	}
	return found
}

// ScanLine reports whether line holds a secret, and the line with every
// secret in it replaced, so that the report itself holds none.
func (s *Scanner) ScanLine(line string) (Finding, bool) {
	var f Finding
	for _, sec := range s.secrets {
		if strings.Contains(line, sec.Value) {
			f.Name = cmp.Or(f.Name, sec.Name)
			line = strings.ReplaceAll(line, sec.Value, "<secret: "+sec.Name+">")
		}
	}
	for _, p := range patterns {
		if p.re.MatchString(line) {
			f.Name = cmp.Or(f.Name, p.name)
			line = p.re.ReplaceAllLiteralString(line, "<secret: "+p.name+">")
		}
	}
	f.Line = strings.TrimRight(line, "\n")
	return f, f.Name != ""
}

// Root returns the folder of the nearest go.mod at or above the working
// directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("secretscan: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("secretscan: no go.mod above the working directory")
		}
		dir = parent
	}
}
