package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// AWSConfig is the aws.secretsmanager keystore (config.md §9.6). It holds
// secrets (SecretKey, SessionToken): never log it.
type AWSConfig struct {
	// Endpoint is the SecretsManager endpoint. Never empty after Parse.
	Endpoint string

	// Region is the AWS region. Never empty after Parse.
	Region string

	// KMSKey is the KMS key that encrypts new secrets. Empty means the
	// AWS default key.
	KMSKey string

	// AccessKey, SecretKey and SessionToken are static credentials. All
	// empty means the AWS SDK default chain.
	AccessKey, SecretKey, SessionToken string
}

func decodeAWS(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(AWSConfig)
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint": d.Str(&c.Endpoint),
		"region":   d.Str(&c.Region),
		"kmskey":   d.Str(&c.KMSKey),
		"credentials": d.Sub(map[string]config.Field{
			"accesskey": d.Str(&c.AccessKey),
			"secretkey": d.Str(&c.SecretKey),
			"token":     d.Str(&c.SessionToken),
		}),
	})
	if err != nil {
		return nil, err
	}
	err = requireAll(d, key, "kesconf: invalid AWS keystore: ",
		required{c.Endpoint, "no endpoint specified"},
		required{c.Region, "no region specified"})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Connect reports that the AWS store is not part of this release yet.
func (c *AWSConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("aws.secretsmanager")
}

// Banner returns "AWS SecretsManager: <endpoint>".
func (c *AWSConfig) Banner() string { return "AWS SecretsManager: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *AWSConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds a secret key or session token.
func (c *AWSConfig) HasSecrets() bool { return c.SecretKey != "" || c.SessionToken != "" }
