package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/aws"
)

// AWS is the aws.secretsmanager keystore (config.md §9.6). Its defaults
// and validation are the aws package's. It holds secrets (SecretKey,
// SessionToken): never log Config.
type AWS struct {
	// Config is the store's configuration as the file gives it.
	Config aws.Config
}

func decodeAWS(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(aws.Config)
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
	return &AWS{Config: *c}, nil
}

// Connect creates the Secrets Manager client and probes the endpoint.
func (a *AWS) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	c := a.Config
	s, err := aws.Connect(ctx, &c, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "AWS SecretsManager: <endpoint>".
func (a *AWS) Banner() string { return a.Config.String() }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (a *AWS) String() string { return a.Banner() }

// HasSecrets reports whether the file holds a secret key or session token.
func (a *AWS) HasSecrets() bool { return a.Config.SecretKey != "" || a.Config.SessionToken != "" }
