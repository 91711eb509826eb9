package awstest_test

import (
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openkes/kes/internal/awstest"
)

func TestLocalKMS(t *testing.T) {
	srv := awstest.StartLocalKMS(t)
	id, arn := srv.CreateKMSKey(t)
	if id == "" || !strings.HasSuffix(arn, ":key/"+id) {
		t.Fatalf("CreateKMSKey = %q, %q", id, arn)
	}
	out, err := srv.KMS().DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: awssdk.String(arn)})
	if err != nil || awssdk.ToString(out.KeyMetadata.KeyId) != id {
		t.Fatalf("DescribeKey(%s) = %v, %v", arn, out, err)
	}
	srv.Stop()
	if _, err := srv.KMS().ListKeys(t.Context(), &kms.ListKeysInput{}); err == nil {
		t.Fatal("local-kms answers after Stop")
	}
}

func TestKumo(t *testing.T) {
	srv := awstest.StartKumo(t)
	c := srv.SecretsManager()
	if _, err := c.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: awssdk.String("k"), SecretString: awssdk.String("v"),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: awssdk.String("k")})
	if err != nil || awssdk.ToString(out.SecretString) != "v" {
		t.Fatalf("GetSecretValue(k) = %v, %v", out, err)
	}
}
