package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
)

// EntrustConfig is the entrust.keycontrol keystore (config.md §9.8). It
// holds a secret (Password): never log it.
type EntrustConfig struct {
	// Endpoint, VaultID and BoxID (an id or a name) locate the box. Never
	// empty after Parse.
	Endpoint, VaultID, BoxID string

	// Username and Password are the login. Never empty after Parse.
	Username, Password string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

func decodeEntrust(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(EntrustConfig)
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint": d.Str(&c.Endpoint),
		"vault_id": d.Str(&c.VaultID),
		"box_id":   d.Str(&c.BoxID),
		"credentials": d.Sub(map[string]config.Field{
			"username": d.Str(&c.Username),
			"password": d.Str(&c.Password),
		}),
		"tls": d.Sub(map[string]config.Field{"ca": d.Str(&c.CAPath)}),
	})
	if err != nil {
		return nil, err
	}
	err = requireAll(d, key, "kesconf: invalid Entrust keystore: ",
		required{c.Endpoint, "no endpoint specified"},
		required{c.VaultID, "no vault ID specified"},
		required{c.BoxID, "no box ID specified"},
		required{c.Username, "no username specified"},
		required{c.Password, "no password specified"})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Connect reports that the Entrust store is not part of this release yet.
func (c *EntrustConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return notBuilt("entrust.keycontrol")
}

// Banner returns "Entrust KeyControl: <endpoint>".
func (c *EntrustConfig) Banner() string { return "Entrust KeyControl: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *EntrustConfig) String() string { return c.Banner() }

// HasSecrets reports whether the file holds a password.
func (c *EntrustConfig) HasSecrets() bool { return c.Password != "" }
