package aws_test

import (
	"context"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/keystore/aws"
)

// testConfig is a store configuration for endpoint with the test
// credentials and short backoffs, so retry tests take milliseconds.
func testConfig(endpoint string) *aws.Config {
	return &aws.Config{
		Endpoint:   endpoint,
		Region:     awstest.Region,
		AccessKey:  awstest.AccessKey,
		SecretKey:  awstest.SecretKey,
		MaxBackoff: 5 * time.Millisecond,
	}
}

// connect connects to c and closes the store at the end of the test.
func connect(t *testing.T, c *aws.Config) *aws.Store {
	t.Helper()
	s, err := aws.Connect(t.Context(), c, nil)
	if err != nil {
		t.Fatalf("Connect(%s): %v", c, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clear deletes every secret kumo holds, behind the store's back.
func clear(t *testing.T, kumo *awstest.Server) {
	t.Helper()
	ctx := t.Context()
	c := kumo.SecretsManager()
	p := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{})
	var names []string
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListSecrets: %v", err)
		}
		for _, e := range out.SecretList {
			names = append(names, awssdk.ToString(e.Name))
		}
	}
	for _, name := range names {
		_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
			SecretId: awssdk.String(name), ForceDeleteWithoutRecovery: awssdk.Bool(true),
		})
		if err != nil {
			t.Fatalf("DeleteSecret(%s): %v", name, err)
		}
	}
}

// secretValue reads a secret from kumo directly.
func secretValue(t *testing.T, kumo *awstest.Server, name string) *secretsmanager.GetSecretValueOutput {
	t.Helper()
	out, err := kumo.SecretsManager().GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(name)})
	if err != nil {
		t.Fatalf("GetSecretValue(%s): %v", name, err)
	}
	return out
}

// describe describes a secret in kumo directly.
func describe(t *testing.T, kumo *awstest.Server, name string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	out, err := kumo.SecretsManager().DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(name)})
	if err != nil {
		t.Fatalf("DescribeSecret(%s): %v", name, err)
	}
	return out
}

// deadline returns a context that ends after d, for tests of slow answers.
func deadline(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
