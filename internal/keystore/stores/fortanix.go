package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// FortanixConfig is the fortanix.sdkms keystore (config.md §9.3). It holds
// a secret (APIKey): never log it.
type FortanixConfig struct {
	// Endpoint is the SDKMS URL. Never empty after Parse.
	Endpoint string

	// GroupID is the group of new keys. Empty means the app's default group.
	GroupID string

	// APIKey is the app API key. Never empty after Parse.
	APIKey string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

func decodeFortanix(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(FortanixConfig)
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint":    d.Str(&c.Endpoint),
		"group_id":    d.Str(&c.GroupID),
		"credentials": d.Sub(map[string]config.Field{"key": d.Str(&c.APIKey)}),
		"tls":         d.Sub(map[string]config.Field{"ca": d.Str(&c.CAPath)}),
	})
	if err != nil {
		return nil, err
	}
	err = requireAll(d, key, "kesconf: invalid fortanix keystore: ",
		required{c.Endpoint, "no endpoint specified"},
		required{c.APIKey, "no API key specified"})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Connect reports that the Fortanix store is not part of this release yet.
func (c *FortanixConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("fortanix.sdkms")
}

// Banner returns "Fortanix SDKMS: <endpoint>".
func (c *FortanixConfig) Banner() string { return "Fortanix SDKMS: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *FortanixConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds an API key.
func (c *FortanixConfig) HasSecrets() bool { return c.APIKey != "" }
