package gcp_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/gcp"
)

// TestServiceAccount: with the credentials of a config file the client
// signs its own JWTs with the service-account key (Google's self-signed JWT
// flow; the token_uri KES writes into the key is never called). The fake
// verifies each: RS256 by the key of private_key_id, issuer and subject the
// client email, unexpired, a scope that covers Secret Manager.
func TestServiceAccount(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{})
	sa := g.ServiceAccount(t, "kes")

	t.Run("key", func(t *testing.T) {
		c := config(g, sa)
		// As a YAML file often carries it: one line with literal \n.
		c.Credentials.PrivateKey = strings.ReplaceAll(sa.PrivateKey, "\n", `\n`)
		s := connect(t, c)
		before := len(g.Requests())
		if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		for _, r := range g.Requests()[before:] {
			header, claims := decodeJWT(t, r.Token)
			if header["kid"] != sa.PrivateKeyID || header["alg"] != "RS256" || claims["iss"] != sa.ClientEmail || claims["sub"] != sa.ClientEmail {
				t.Errorf("%s token: header %v, claims %v", r.Method, header, claims)
			}
		}
	})
	t.Run("scopes", func(t *testing.T) {
		c := config(g, sa)
		c.Scopes = []string{"https://www.googleapis.com/auth/cloud-platform"}
		if err := connect(t, c).Create(t.Context(), "scoped", []byte("v")); err != nil {
			t.Fatalf("Create with the cloud-platform scope: %v", err)
		}
		c.Scopes = []string{"https://www.googleapis.com/auth/devstorage.read_only"}
		err := connect(t, c).Create(t.Context(), "unscoped", []byte("v"))
		if status.Code(err) != codes.PermissionDenied || keystore.IsUnreachable(err) {
			t.Fatalf("Create with a scope not covering Secret Manager: got %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		// A key Google does not know (deleted, or of another fake): the
		// store connects (the probe is unauthenticated, as upstream) and
		// every call fails with UNAUTHENTICATED, never as not found.
		other := fake.StartGCP(t, fake.GCPOptions{}).ServiceAccount(t, "kes")
		s := connect(t, config(g, other))
		if _, err := s.Get(t.Context(), "k"); status.Code(err) != codes.Unauthenticated || errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get with an unknown key: got %v, want UNAUTHENTICATED", err)
		}
	})
}

func decodeJWT(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %.20q… is not a JWT", token)
	}
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestApplicationDefaultCredentials: without credentials in the config the
// store uses Application Default Credentials, here the GCE metadata server
// (GCE_METADATA_HOST), whose access tokens expire. When a token has
// expired the client fetches a new one before the next call, and the
// expired one is refused by the service.
//
// The test sets process environment variables, so it does not run in
// parallel. It runs alone in this package to ask for ADC: the SDK
// remembers process-wide whether it runs on GCE.
func TestApplicationDefaultCredentials(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{})
	t.Setenv("GCE_METADATA_HOST", g.MetadataHost())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir()) // no gcloud ADC file of the machine
	t.Setenv("HOME", t.TempDir())

	c := &gcp.Config{ProjectID: g.Project, Endpoint: g.Endpoint()}
	gcp.SetTestOnlyRootCAs(c, g.RootCAs())
	s := connect(t, c)

	// Tokens expire as they arrive: each call needs a fresh one.
	g.SetTokenLifetime(-1)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	g.ExpireTokens()
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after the token expired: %q, %v", v, err)
	}
	issued := g.IssuedTokens()
	if len(issued) < 2 {
		t.Fatalf("%d tokens issued, want a new one after expiry", len(issued))
	}
	reqs := g.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "AccessSecretVersion" || last.Token != issued[len(issued)-1] || slices.Contains(issued[:len(issued)-1], last.Token) {
		t.Fatalf("Get used token %.20q…, want the newest issued", last.Token)
	}

	// Long-lived tokens are reused.
	g.SetTokenLifetime(3600)
	for range 3 {
		if _, err := s.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	n := len(g.IssuedTokens())
	for range 3 {
		if _, err := s.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(g.IssuedTokens()); got != n {
		t.Fatalf("%d new tokens for calls with a valid one", got-n)
	}
}

// TestInvalidKey: a private key that does not parse fails, and the error
// does not print it.
func TestInvalidKey(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{})
	c := config(g, g.ServiceAccount(t, "kes"))
	c.Credentials.PrivateKey = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"
	s, err := gcp.Connect(t.Context(), c, nil)
	if err == nil {
		defer s.Close()
		err = s.Create(t.Context(), "k", []byte("v"))
	}
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0LWtleS1ieXRlcw") {
		t.Fatalf("invalid key: got %v, want an error without the key", err)
	}
}
