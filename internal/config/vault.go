package config

import (
	"context"
	"log/slog"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/vault"
)

// Defaults of the vault keystore applied by Parse (config.md §9.2).
const (
	DefaultVaultEngine           = "kv"
	DefaultVaultEngineVersion    = "v1"
	DefaultVaultTransitEngine    = "transit"
	DefaultVaultAppRoleEngine    = "approle"
	DefaultVaultKubernetesEngine = "kubernetes"
	DefaultVaultStatusPing       = 15 * time.Second
)

// VaultConfig is the vault keystore: HashiCorp Vault or OpenBao KV
// (config.md §9.2). Exactly one of AppRole and Kubernetes is set after
// Parse. It holds secrets (AppRole.Secret, Kubernetes.JWT): never log it.
type VaultConfig struct {
	// Endpoint is the Vault URL, e.g. "https://127.0.0.1:8200". Never
	// empty after Parse.
	Endpoint string

	// Engine is the KV mount path. Parse sets DefaultVaultEngine if empty.
	Engine string

	// EngineVersion is "v1" or "v2". Parse sets DefaultVaultEngineVersion
	// if empty.
	EngineVersion string

	// Namespace is sent as X-Vault-Namespace on KV and transit calls.
	// Empty means none.
	Namespace string

	// Prefix is the path prefix inside the mount. Empty means none.
	Prefix string

	// Transit is the optional second encryption layer. A zero Transit
	// (empty Key) means none.
	Transit VaultTransit

	// AppRole is the AppRole login. A zero AppRole (empty ID) means
	// AppRole is not used.
	AppRole VaultAppRole

	// Kubernetes is the Kubernetes login. A zero Kubernetes (empty JWT)
	// means Kubernetes auth is not used.
	Kubernetes VaultKubernetes

	// TLS holds the client TLS files for talking to Vault.
	TLS VaultTLS

	// StatusPing is the interval of the background seal check. Parse sets
	// DefaultVaultStatusPing if zero; never negative.
	StatusPing time.Duration
}

// VaultTransit is the transit settings of [VaultConfig].
type VaultTransit struct {
	// Engine is the transit mount path. Parse sets
	// DefaultVaultTransitEngine if the section is present and it is empty.
	Engine string

	// Key is the transit key name. Empty means transit is not used.
	Key string
}

// VaultAppRole is the AppRole login of [VaultConfig].
type VaultAppRole struct {
	// Engine is the auth mount. Parse sets DefaultVaultAppRoleEngine if
	// the section is present and it is empty.
	Engine string

	// Namespace is the namespace of the login. Empty means the store's
	// Namespace; "/" means the root namespace (no header).
	Namespace string

	// ID is the role_id. Empty means AppRole is not used.
	ID string

	// Secret is the secret_id. Never empty when ID is set.
	Secret string
}

// VaultKubernetes is the Kubernetes login of [VaultConfig].
type VaultKubernetes struct {
	// Engine is the auth mount. Parse sets DefaultVaultKubernetesEngine
	// if the section is present and it is empty.
	Engine string

	// Namespace is as [VaultAppRole.Namespace].
	Namespace string

	// Role is the login role. Empty means none.
	Role string

	// JWT is the service-account token, or the path of a file holding it
	// if it contains a '/' (re-read on every login). Empty means
	// Kubernetes auth is not used.
	JWT string
}

// VaultTLS holds the client TLS files of [VaultConfig].
type VaultTLS struct {
	// KeyFile and CertFile are the client certificate for mTLS to Vault;
	// both or neither are set. Empty means no client certificate.
	KeyFile, CertFile string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

const vaultPrefix = "kesconf: invalid vault keystore: "

func decodeVault(d *decoder, path string, key, val *yaml.Node) (KeyStore, error) {
	c := new(VaultConfig)
	var transit, approle, kube *yaml.Node // present sections
	err := d.mapping(val, path, map[string]field{
		"endpoint":  d.str(&c.Endpoint),
		"engine":    d.str(&c.Engine),
		"version":   d.str(&c.EngineVersion),
		"namespace": d.str(&c.Namespace),
		"prefix":    d.str(&c.Prefix),
		"transit": d.presence(&transit, map[string]field{
			"engine": d.str(&c.Transit.Engine),
			"key":    d.str(&c.Transit.Key),
		}),
		"approle": d.presence(&approle, map[string]field{
			"engine":    d.str(&c.AppRole.Engine),
			"namespace": d.str(&c.AppRole.Namespace),
			"id":        d.str(&c.AppRole.ID),
			"secret":    d.str(&c.AppRole.Secret),
			"retry":     d.ignore(),
		}),
		"kubernetes": d.presence(&kube, map[string]field{
			"engine":    d.str(&c.Kubernetes.Engine),
			"namespace": d.str(&c.Kubernetes.Namespace),
			"role":      d.str(&c.Kubernetes.Role),
			"jwt":       d.str(&c.Kubernetes.JWT),
			"retry":     d.ignore(),
		}),
		"tls": d.sub(map[string]field{
			"key":  d.str(&c.TLS.KeyFile),
			"cert": d.str(&c.TLS.CertFile),
			"ca":   d.str(&c.TLS.CAPath),
		}),
		"status": d.sub(map[string]field{
			"ping": d.nonNegative(&c.StatusPing, vaultPrefix+"invalid status ping '%v'"),
		}),
	})
	if err != nil {
		return nil, err
	}
	if err := c.validate(d, key, transit, approle, kube); err != nil {
		return nil, err
	}
	c.setDefaults(transit != nil, approle != nil, kube != nil)
	return c, nil
}

func (c *VaultConfig) validate(d *decoder, key, transit, approle, kube *yaml.Node) error {
	switch {
	case c.Endpoint == "":
		return d.failf(key, vaultPrefix+"no endpoint specified")
	case c.EngineVersion != "" && c.EngineVersion != "v1" && c.EngineVersion != "v2":
		return d.failf(key, "vault: invalid engine API version")
	case transit != nil && c.Transit.Key == "":
		return d.failf(transit, vaultPrefix+"no transit key specified")
	case approle == nil && kube == nil:
		return d.failf(key, vaultPrefix+"no authentication method specified")
	case approle != nil && kube != nil:
		return d.failf(kube, vaultPrefix+"more than one authentication method specified")
	case approle != nil && c.AppRole.ID == "":
		return d.failf(approle, vaultPrefix+"no AppRole ID specified")
	case approle != nil && c.AppRole.Secret == "":
		return d.failf(approle, vaultPrefix+"no AppRole secret specified")
	case kube != nil && c.Kubernetes.JWT == "":
		return d.failf(kube, vaultPrefix+"no Kubernetes JWT specified")
	case (c.TLS.KeyFile == "") != (c.TLS.CertFile == ""):
		return d.failf(key, vaultPrefix+"tls.key and tls.cert must be specified together")
	}
	return nil
}

func (c *VaultConfig) setDefaults(transit, approle, kube bool) {
	if c.Engine == "" {
		c.Engine = DefaultVaultEngine
	}
	if c.EngineVersion == "" {
		c.EngineVersion = DefaultVaultEngineVersion
	}
	if transit && c.Transit.Engine == "" {
		c.Transit.Engine = DefaultVaultTransitEngine
	}
	if approle && c.AppRole.Engine == "" {
		c.AppRole.Engine = DefaultVaultAppRoleEngine
	}
	if kube && c.Kubernetes.Engine == "" {
		c.Kubernetes.Engine = DefaultVaultKubernetesEngine
	}
	if c.StatusPing == 0 {
		c.StatusPing = DefaultVaultStatusPing
	}
}

// Connect connects to Vault and logs in (internal/keystore/vault).
func (c *VaultConfig) Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error) {
	cfg := &vault.Config{
		Endpoint:      c.Endpoint,
		Engine:        c.Engine,
		EngineVersion: c.EngineVersion,
		Namespace:     c.Namespace,
		Prefix:        c.Prefix,
		TLS:           vault.TLS{KeyFile: c.TLS.KeyFile, CertFile: c.TLS.CertFile, CAPath: c.TLS.CAPath},
		StatusPing:    c.StatusPing,
		Logger:        logger,
	}
	if c.Transit.Key != "" {
		cfg.Transit = &vault.Transit{Engine: c.Transit.Engine, Key: c.Transit.Key}
	}
	if c.AppRole.ID != "" {
		a := c.AppRole
		cfg.AppRole = &vault.AppRole{Engine: a.Engine, Namespace: a.Namespace, ID: a.ID, Secret: a.Secret}
	}
	if c.Kubernetes.JWT != "" {
		k := c.Kubernetes
		cfg.Kubernetes = &vault.Kubernetes{Engine: k.Engine, Namespace: k.Namespace, Role: k.Role, JWT: k.JWT}
	}
	s, err := vault.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Hashicorp Vault: <endpoint>".
func (c *VaultConfig) Banner() string { return "Hashicorp Vault: " + c.Endpoint }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *VaultConfig) String() string { return c.Banner() }
