package stores

import (
	"context"
	"errors"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/gcp"
)

// GCP is the gcp.secretmanager keystore: Google Cloud Secret Manager
// (config.md §9.5). Its validation is the gcp package's. It holds a secret
// (Credentials.PrivateKey): never log Config.
type GCP struct {
	// Config is the store's configuration as the file gives it: optional
	// fields left empty mean the SDK's defaults, and a private key keeps
	// its literal `\n` sequences (the gcp package turns them into
	// newlines).
	Config gcp.Config
}

func decodeGCP(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(gcp.Config)
	var creds *yaml.Node // the credentials section, if present
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
	if err := c.Validate(); err != nil {
		// The error names the section it is about.
		at := key
		if !errors.Is(err, gcp.ErrNoProjectID) {
			at = creds
		}
		return nil, d.Fail(at, err)
	}
	return &GCP{Config: *c}, nil
}

// Connect connects to Secret Manager and probes the endpoint.
func (g *GCP) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	s, err := gcp.Connect(ctx, &g.Config, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "GCP SecretManager: Project=<id>".
func (g *GCP) Banner() string { return "GCP SecretManager: Project=" + g.Config.ProjectID }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (g *GCP) String() string { return g.Banner() }

// HasSecrets reports whether the file holds a private key.
func (g *GCP) HasSecrets() bool { return g.Config.Credentials.PrivateKey != "" }
