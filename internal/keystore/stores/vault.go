package stores

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/vault"
)

// Vault is the vault keystore: HashiCorp Vault or OpenBao K/V (config.md
// §9.2). Its defaults and validation are the vault package's. It holds
// secrets (AppRole.Secret, Kubernetes.JWT): never log Config.
type Vault struct {
	// Config is the store's configuration as the file gives it: empty
	// optional fields stay empty and mean the vault package's defaults.
	// Config.Logger is set by Connect.
	Config vault.Config
}

func decodeVault(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(vault.Config)
	var (
		transit            vault.Transit
		approle            vault.AppRole
		kube               vault.Kubernetes
		transitN, approleN *yaml.Node // present sections
		kubeN              *yaml.Node
	)
	err := d.Mapping(val, path, map[string]config.Field{
		"endpoint":  d.Str(&c.Endpoint),
		"engine":    d.Str(&c.Engine),
		"version":   d.Str(&c.EngineVersion),
		"namespace": d.Str(&c.Namespace),
		"prefix":    d.Str(&c.Prefix),
		"transit": d.Presence(&transitN, map[string]config.Field{
			"engine": d.Str(&transit.Engine),
			"key":    d.Str(&transit.Key),
		}),
		"approle": d.Presence(&approleN, map[string]config.Field{
			"engine":    d.Str(&approle.Engine),
			"namespace": d.Str(&approle.Namespace),
			"id":        d.Str(&approle.ID),
			"secret":    d.Str(&approle.Secret),
			"retry":     d.Ignore(),
		}),
		"kubernetes": d.Presence(&kubeN, map[string]config.Field{
			"engine":    d.Str(&kube.Engine),
			"namespace": d.Str(&kube.Namespace),
			"role":      d.Str(&kube.Role),
			"jwt":       d.Str(&kube.JWT),
			"retry":     d.Ignore(),
		}),
		"tls": d.Sub(map[string]config.Field{
			"key":  d.Str(&c.TLS.KeyFile),
			"cert": d.Str(&c.TLS.CertFile),
			"ca":   d.Str(&c.TLS.CAPath),
		}),
		"status": d.Sub(map[string]config.Field{
			// The store takes a negative ping as "no seal check"; the file
			// has no way to say that (upstream refuses it).
			"ping": d.NonNegative(&c.StatusPing, "kesconf: invalid vault keystore: invalid status ping '%v'"),
		}),
	})
	if err != nil {
		return nil, err
	}
	if transitN != nil {
		c.Transit = &transit
	}
	if approleN != nil {
		c.AppRole = &approle
	}
	if kubeN != nil {
		c.Kubernetes = &kube
	}
	if err := c.Validate(); err != nil {
		// The error names the section it is about.
		at := key
		switch {
		case errors.Is(err, vault.ErrNoTransitKey):
			at = transitN
		case errors.Is(err, vault.ErrNoAppRoleID), errors.Is(err, vault.ErrNoAppRoleSecret):
			at = approleN
		case errors.Is(err, vault.ErrManyAuth), errors.Is(err, vault.ErrNoJWT):
			at = kubeN
		}
		return nil, d.Fail(at, err)
	}
	return &Vault{Config: *c}, nil
}

// Connect connects to Vault and logs in.
func (v *Vault) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	c := v.Config
	c.Logger = logger
	s, err := vault.Connect(ctx, &c)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Hashicorp Vault: <endpoint>".
func (v *Vault) Banner() string { return "Hashicorp Vault: " + v.Config.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (v *Vault) String() string { return v.Banner() }

// HasSecrets reports whether the file holds the AppRole secret or a
// literal Kubernetes token (a JWT containing '/' is the path of the token
// file).
func (v *Vault) HasSecrets() bool {
	c := &v.Config
	return c.AppRole != nil && c.AppRole.Secret != "" ||
		c.Kubernetes != nil && c.Kubernetes.JWT != "" && !strings.Contains(c.Kubernetes.JWT, "/")
}
