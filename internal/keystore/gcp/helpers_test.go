package gcp_test

import (
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/gcp"
)

// config returns a store config for fake g with service account sa, as a
// config file's gcp.secretmanager section would give it, trusting the
// fake's test CA.
func config(g *fake.GCP, sa fake.GCPServiceAccount) *gcp.Config {
	c := &gcp.Config{
		ProjectID: g.Project,
		Endpoint:  g.Endpoint(),
		Credentials: gcp.Credentials{
			ClientEmail:  sa.ClientEmail,
			ClientID:     sa.ClientID,
			PrivateKeyID: sa.PrivateKeyID,
			PrivateKey:   sa.PrivateKey,
		},
	}
	gcp.SetTestOnlyRootCAs(c, g.RootCAs())
	return c
}

func connect(t testing.TB, c *gcp.Config) *gcp.Store {
	t.Helper()
	s, err := gcp.Connect(t.Context(), c, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore starts a fake and connects a store to it with a new service
// account.
func newStore(t *testing.T, opts fake.GCPOptions) (*gcp.Store, *fake.GCP) {
	t.Helper()
	g := fake.StartGCP(t, opts)
	return connect(t, config(g, g.ServiceAccount(t, "kes"))), g
}

// rawClient is a Secret Manager client as upstream KES configured it
// (service-account JSON, endpoint), for writing and reading secrets past
// the store.
func rawClient(t *testing.T, g *fake.GCP, sa fake.GCPServiceAccount) *secretmanager.Client {
	t.Helper()
	key := `{"type": "service_account", "project_id": "` + g.Project + `", "private_key_id": "` + sa.PrivateKeyID +
		`", "private_key": ` + jsonString(sa.PrivateKey) + `, "client_email": "` + sa.ClientEmail +
		`", "client_id": "` + sa.ClientID + `", "token_uri": "https://accounts.google.com/o/oauth2/token"}`
	c, err := secretmanager.NewClient(t.Context(),
		option.WithEndpoint(g.Endpoint()),
		option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(key)),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: g.RootCAs()}))),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
