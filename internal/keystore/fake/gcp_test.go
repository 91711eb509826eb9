package fake_test

import (
	"crypto/tls"
	"encoding/json"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/openkes/kes/internal/keystore/fake"
)

// TestGCP checks the fake's answers that the store does not exercise
// itself (ETags, version states, the latest alias) through the real client.
func TestGCP(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{})
	sa := g.ServiceAccount(t, "test")
	key, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": sa.ClientEmail, "client_id": sa.ClientID,
		"private_key_id": sa.PrivateKeyID, "private_key": sa.PrivateKey,
	})
	c, err := secretmanager.NewClient(t.Context(), option.WithEndpoint(g.Endpoint()),
		option.WithAuthCredentialsJSON(option.ServiceAccount, key),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: g.RootCAs()}))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	g.PutSecret("s", []byte("v1"), []byte("v2"))
	name := "projects/kes-project/secrets/s"

	sec, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name})
	if err != nil || sec.GetName() != "projects/123456789012/secrets/s" || sec.GetEtag() == "" {
		t.Fatalf("GetSecret = %v, %v", sec, err)
	}
	latest, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name + "/versions/latest"})
	if err != nil || string(latest.GetPayload().GetData()) != "v2" || latest.GetPayload().DataCrc32C == nil {
		t.Fatalf("access latest = %v, %v", latest, err)
	}
	v1, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name + "/versions/1"})
	if err != nil || v1.GetState() != secretmanagerpb.SecretVersion_ENABLED {
		t.Fatalf("GetSecretVersion = %v, %v", v1, err)
	}
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v1.GetName(), Etag: `"stale"`}); status.Code(err) != codes.Aborted {
		t.Fatalf("disable with a stale etag: %v, want ABORTED", err)
	}
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v1.GetName(), Etag: v1.GetEtag()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name + "/versions/1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("access of a disabled version: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: name + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: name + "/versions/1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("enable of a destroyed version: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name + "/versions/3"}); status.Code(err) != codes.NotFound {
		t.Fatalf("access of a missing version: %v, want NOT_FOUND", err)
	}
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: name, Etag: `"stale"`}); status.Code(err) != codes.Aborted {
		t.Fatalf("delete with a stale etag: %v, want ABORTED", err)
	}
	if err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetSecret after delete: %v, want NOT_FOUND", err)
	}
	if _, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/kes-project", SecretId: "no-replication", Secret: &secretmanagerpb.Secret{}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateSecret without replication: %v, want INVALID_ARGUMENT", err)
	}
	// Unauthenticated calls fail.
	anon, err := secretmanager.NewClient(ctx, option.WithEndpoint(g.Endpoint()),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: g.RootCAs()}))), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call without a token: %v, want UNAUTHENTICATED", err)
	}
}
