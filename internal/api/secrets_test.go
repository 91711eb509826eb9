package api_test

import (
	"sync"
	"testing"

	"github.com/openkes/kes/internal/secretscan"
)

// fixtureSecrets is the scanner of the repository's fixture secrets (the
// vectors' keys and API keys) and secret patterns.
var fixtureSecrets = sync.OnceValues(func() (*secretscan.Scanner, error) {
	root, err := secretscan.Root()
	if err != nil {
		return nil, err
	}
	return secretscan.Load(root)
})

// checkNoSecrets fails t if text, which came from where (the error log, the
// audit log, an error body), holds a secret.
func checkNoSecrets(t testing.TB, where, text string) {
	t.Helper()
	s, err := fixtureSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Scan(text) {
		t.Errorf("the %s holds a secret (%s): %s", where, f.Name, f.Line)
	}
}

// TestCheckNoSecrets: the harness's check finds a vector key in a log.
func TestCheckNoSecrets(t *testing.T) {
	var rec recorder
	checkNoSecrets(&rec, "error log", `{"msg":"cannot decrypt","key":"Nbb5P8ApGz2oNIGtKobdjB3pebb+k0KJ2dkZmLOr+Z4="}`)
	checkNoSecrets(&rec, "error body", `{"message":"key does not exist"}`)
	if len(rec.errors) != 1 {
		t.Fatalf("findings: %q, want one", rec.errors)
	}
}

// recorder is a testing.TB that records its errors.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
}
