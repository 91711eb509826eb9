package stores

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/kmip"
)

// KMIP is the kmip keystore, an OpenKES extension (docs/keystores/kmip.md):
// a KMIP 1.x server. It may hold a secret (Config.Password): never log
// Config.
type KMIP struct {
	Config kmip.Config
}

// errEndpoints is the error for a section that has both forms.
var errEndpoints = errors.New("kesconf: invalid KMIP keystore: only one of endpoint and endpoints may be specified")

func decodeKMIP(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	var (
		c         kmip.Config
		endpoint  string
		endpointN *yaml.Node
	)
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint": func(p string, k, v *yaml.Node) error {
			endpointN = k
			return d.Str(&endpoint)(p, k, v)
		},
		"endpoints": d.StrList(&c.Endpoints, true),
		"tls": d.Sub(map[string]config.Field{
			"key":  d.Str(&c.KeyFile),
			"cert": d.Str(&c.CertFile),
			"ca":   d.Str(&c.CAPath),
		}),
		"credentials": d.Sub(map[string]config.Field{
			"username": d.Str(&c.Username),
			"password": d.Str(&c.Password),
		}),
	})
	if err != nil {
		return nil, err
	}
	if endpointN != nil {
		if len(c.Endpoints) > 0 {
			return nil, d.Fail(endpointN, errEndpoints)
		}
		if endpoint != "" {
			c.Endpoints = []string{endpoint}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, d.Fail(key, err)
	}
	return &KMIP{Config: c}, nil
}

// Connect opens a first connection to the KMIP server and returns the
// store; the caller closes it.
func (k *KMIP) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	s, err := kmip.Connect(ctx, &k.Config, logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "KMIP: <endpoints>".
func (k *KMIP) Banner() string { return "KMIP: " + strings.Join(k.Config.Endpoints, ", ") }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (k *KMIP) String() string { return k.Banner() }

// HasSecrets reports whether the file holds a password. (The client's
// private key is a file of its own.)
func (k *KMIP) HasSecrets() bool { return k.Config.Password != "" }
