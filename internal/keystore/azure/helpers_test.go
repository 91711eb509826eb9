package azure

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore/fake"
)

// The service principal the fake accepts.
const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient = "0d2b7bd4-5d3e-4c4b-9a36-7c8f1d2e3f40"
	testSecret = "s3cr3t~client.secret-value" // must never appear in an error
)

// newFake starts a Key Vault + Entra fake and returns it with a Config
// that reaches it through the real client-secret flow.
func newFake(t *testing.T) (*fake.Azure, *Config) {
	t.Helper()
	f := fake.NewAzure(t, testTenant, testClient, testSecret)
	return f, fakeConfig(t, f)
}

func fakeConfig(t *testing.T, f *fake.Azure) *Config {
	t.Helper()
	client := f.Client()
	t.Cleanup(client.CloseIdleConnections)
	return &Config{
		Endpoint:      f.VaultURL(),
		Credentials:   Credentials{TenantID: testTenant, ClientID: testClient, ClientSecret: testSecret},
		AuthorityHost: f.AuthorityHost(),
		Transport:     client,
	}
}

// connect returns a store for c whose purge/set retries wait 1 ms, so that
// tests of the soft-delete handling stay fast; tests of the real backoff
// use connectBackoff.
func connect(t *testing.T, c *Config) *Store {
	t.Helper()
	s := connectBackoff(t, c)
	s.wait = func(int) time.Duration { return time.Millisecond }
	return s
}

func connectBackoff(t *testing.T, c *Config) *Store {
	t.Helper()
	s, err := Connect(t.Context(), c, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// calls renders vault requests as "METHOD path status" lines.
func calls(reqs []fake.AzureRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Method+" "+r.Path+" "+itoa(r.Status))
	}
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// checkNoSecret fails if err's text holds the client secret.
func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error contains the client secret: %v", err)
	}
}
