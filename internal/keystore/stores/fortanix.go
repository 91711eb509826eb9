package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fortanix"
)

// Fortanix is the fortanix.sdkms keystore (config.md §9.3). It holds a
// secret (Config.APIKey): never log Config.
type Fortanix struct {
	Config fortanix.Config
}

func decodeFortanix(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	var c fortanix.Config
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
	return &Fortanix{Config: c}, nil
}

// Connect checks the endpoint and the API key and returns the store.
func (f *Fortanix) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	s, err := fortanix.Connect(ctx, &f.Config, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Fortanix SDKMS: <endpoint>".
func (f *Fortanix) Banner() string { return "Fortanix SDKMS: " + f.Config.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (f *Fortanix) String() string { return f.Banner() }

// HasSecrets reports whether the file holds an API key.
func (f *Fortanix) HasSecrets() bool { return f.Config.APIKey != "" }
