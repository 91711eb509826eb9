package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/entrust"
)

// Entrust is the entrust.keycontrol keystore (config.md §9.8). It holds a
// secret (Config.Password): never log Config.
type Entrust struct {
	Config entrust.Config
}

func decodeEntrust(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	var c entrust.Config
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
	return &Entrust{Config: c}, nil
}

// Connect logs in to KeyControl and returns the store; the caller closes
// it, which stops the token renewal.
func (e *Entrust) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	s, err := entrust.Connect(ctx, &e.Config, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Entrust KeyControl: <endpoint>".
func (e *Entrust) Banner() string { return "Entrust KeyControl: " + e.Config.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (e *Entrust) String() string { return e.Banner() }

// HasSecrets reports whether the file holds a password.
func (e *Entrust) HasSecrets() bool { return e.Config.Password != "" }
