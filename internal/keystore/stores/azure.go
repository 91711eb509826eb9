package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/azure"
)

// Azure is the azure.keyvault keystore: Azure Key Vault secrets
// (config.md §9.7). At most one of Credentials and ManagedIdentityClientID
// is set; neither means Azure's DefaultAzureCredential. It holds a secret
// (Credentials.ClientSecret): never log Config.
type Azure struct {
	// Config is the store's configuration as the file gives it.
	Config azure.Config
}

func decodeAzure(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(azure.Config)
	var creds, managed *yaml.Node
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint": d.Str(&c.Endpoint),
		"credentials": d.Presence(&creds, map[string]config.Field{
			"tenant_id":     d.Str(&c.Credentials.TenantID),
			"client_id":     d.Str(&c.Credentials.ClientID),
			"client_secret": d.Str(&c.Credentials.ClientSecret),
		}),
		"managed_identity": d.Presence(&managed, map[string]config.Field{
			"client_id": d.Str(&c.ManagedIdentityClientID),
		}),
	})
	if err != nil {
		return nil, err
	}
	const prefix = "kesconf: invalid Azure keystore: "
	if err := requireAll(d, key, prefix, required{c.Endpoint, "no endpoint specified"}); err != nil {
		return nil, err
	}
	if creds != nil && managed != nil {
		return nil, d.Failf(managed, "%sonly one of credentials and managed_identity may be specified", prefix)
	}
	if creds != nil {
		err = requireAll(d, creds, prefix,
			required{c.Credentials.TenantID, "no tenant ID specified"},
			required{c.Credentials.ClientID, "no client ID specified"},
			required{c.Credentials.ClientSecret, "no client secret specified"})
	}
	if managed != nil {
		err = requireAll(d, managed, prefix, required{c.ManagedIdentityClientID, "no managed identity client ID specified"})
	}
	if err != nil {
		return nil, err
	}
	return &Azure{Config: *c}, nil
}

// Connect returns the Azure Key Vault store. It contacts nothing: the
// first call fetches a token.
func (a *Azure) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	c := a.Config
	s, err := azure.Connect(ctx, &c, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Azure KeyVault: <endpoint>".
func (a *Azure) Banner() string { return "Azure KeyVault: " + a.Config.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (a *Azure) String() string { return a.Banner() }

// HasSecrets reports whether the file holds a client secret.
func (a *Azure) HasSecrets() bool { return a.Config.Credentials.ClientSecret != "" }
