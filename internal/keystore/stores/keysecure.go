package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/gemalto"
)

// KeySecure is the gemalto.keysecure keystore: Thales CipherTrust Manager
// / KeySecure (config.md §9.4). It holds a secret (Config.Token): never log
// Config.
type KeySecure struct {
	Config gemalto.Config
}

func decodeKeySecure(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	var c gemalto.Config
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint": d.Str(&c.Endpoint),
		"credentials": d.Sub(map[string]config.Field{
			"token":  d.Str(&c.Token),
			"domain": d.Str(&c.Domain),
			"retry":  d.Ignore(),
		}),
		"tls": d.Sub(map[string]config.Field{"ca": d.Str(&c.CAPath)}),
	})
	if err != nil {
		return nil, err
	}
	err = requireAll(d, key, "kesconf: invalid gemalto keystore: ",
		required{c.Endpoint, "no endpoint specified"},
		required{c.Token, "no token specified"})
	if err != nil {
		return nil, err
	}
	return &KeySecure{Config: c}, nil
}

// Connect logs in to CipherTrust Manager and returns the store; the caller
// closes it, which stops the token renewal.
func (k *KeySecure) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	s, err := gemalto.Connect(ctx, &k.Config, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Gemalto KeySecure: <endpoint>".
func (k *KeySecure) Banner() string { return "Gemalto KeySecure: " + k.Config.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (k *KeySecure) String() string { return k.Banner() }

// HasSecrets reports whether the file holds a refresh token.
func (k *KeySecure) HasSecrets() bool { return k.Config.Token != "" }
