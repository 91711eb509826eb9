package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// AzureConfig is the azure.keyvault keystore (config.md §9.7). At most one
// of Credentials and ManagedIdentityClientID is set; neither means Azure's
// DefaultAzureCredential. It holds a secret (Credentials.ClientSecret):
// never log it.
type AzureConfig struct {
	// Endpoint is the vault URL, "https://<vault>.vault.azure.net". Never
	// empty after Parse.
	Endpoint string

	// Credentials is a service principal. A zero value means none;
	// otherwise all three fields are set.
	Credentials AzureCredentials

	// ManagedIdentityClientID selects a managed identity. Empty means none.
	ManagedIdentityClientID string
}

// AzureCredentials is a service principal of [AzureConfig].
type AzureCredentials struct {
	TenantID, ClientID, ClientSecret string
}

func decodeAzure(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(AzureConfig)
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
	return c, nil
}

// Connect reports that the Azure store is not part of this release yet.
func (c *AzureConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("azure.keyvault")
}

// Banner returns "Azure KeyVault: <endpoint>".
func (c *AzureConfig) Banner() string { return "Azure KeyVault: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *AzureConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds a client secret.
func (c *AzureConfig) HasSecrets() bool { return c.Credentials.ClientSecret != "" }
