package stores

import (
	"context"
	"log/slog"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// GCPConfig is the gcp.secretmanager keystore (config.md §9.5). It holds a
// secret (Credentials.PrivateKey): never log it.
type GCPConfig struct {
	// ProjectID is the GCP project. Never empty after Parse.
	ProjectID string

	// Endpoint is the API endpoint. Empty means the SDK default.
	Endpoint string

	// Scopes are the OAuth2 scopes. Nil means the SDK default.
	Scopes []string

	// Credentials is the service account. A zero value means Application
	// Default Credentials; otherwise all four fields are set.
	Credentials GCPCredentials
}

// GCPCredentials is a service account of [GCPConfig].
type GCPCredentials struct {
	ClientEmail  string
	ClientID     string
	PrivateKeyID string
	// PrivateKey is the PEM key; Parse turns literal `\n` sequences into
	// newlines.
	PrivateKey string
}

func decodeGCP(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(GCPConfig)
	var creds *yaml.Node
	cr := &c.Credentials
	err := d.Mapping(val, path, map[string]config.Field{
		"project_id": d.Str(&c.ProjectID),
		"endpoint":   d.Str(&c.Endpoint),
		"scopes":     d.StrList(&c.Scopes, true),
		"credentials": d.Presence(&creds, map[string]config.Field{
			"client_email":   d.Str(&cr.ClientEmail),
			"client_id":      d.Str(&cr.ClientID),
			"private_key_id": d.Str(&cr.PrivateKeyID),
			"private_key":    d.Str(&cr.PrivateKey),
		}),
	})
	if err != nil {
		return nil, err
	}
	const prefix = "kesconf: invalid GCP keystore: "
	if err := requireAll(d, key, prefix, required{c.ProjectID, "no project ID specified"}); err != nil {
		return nil, err
	}
	if *cr != (GCPCredentials{}) {
		err = requireAll(d, creds, prefix,
			required{cr.ClientEmail, "no client email specified"},
			required{cr.ClientID, "no client ID specified"},
			required{cr.PrivateKeyID, "no private key ID specified"},
			required{cr.PrivateKey, "no private key specified"})
		if err != nil {
			return nil, err
		}
	}
	cr.PrivateKey = strings.ReplaceAll(cr.PrivateKey, `\n`, "\n")
	return c, nil
}

// Connect reports that the GCP store is not part of this release yet.
func (c *GCPConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("gcp.secretmanager")
}

// Banner returns "GCP SecretManager: Project=<id>".
func (c *GCPConfig) Banner() string { return "GCP SecretManager: Project=" + c.ProjectID }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *GCPConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds a private key.
func (c *GCPConfig) HasSecrets() bool { return c.Credentials.PrivateKey != "" }
