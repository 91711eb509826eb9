package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// KeySecureConfig is the gemalto.keysecure keystore: Thales CipherTrust
// Manager / KeySecure (config.md §9.4). It holds a secret (Token): never
// log it.
type KeySecureConfig struct {
	// Endpoint is the server URL. Never empty after Parse.
	Endpoint string

	// Token is the refresh token. Never empty after Parse.
	Token string

	// Domain is the login domain. Empty means the root domain.
	Domain string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

func decodeKeySecure(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(KeySecureConfig)
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
	return c, nil
}

// Connect reports that the KeySecure store is not part of this release yet.
func (c *KeySecureConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("gemalto.keysecure")
}

// Banner returns "Gemalto KeySecure: <endpoint>".
func (c *KeySecureConfig) Banner() string { return "Gemalto KeySecure: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *KeySecureConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds a token.
func (c *KeySecureConfig) HasSecrets() bool { return c.Token != "" }
