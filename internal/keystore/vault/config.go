package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by [Config] when a field is empty (spec config.md §9.2).
const (
	DefaultEngine           = "kv"
	DefaultTransitEngine    = "transit"
	DefaultAppRoleEngine    = "approle"
	DefaultKubernetesEngine = "kubernetes"
	DefaultStatusPing       = 15 * time.Second
	DefaultMinTokenTTL      = 30 * time.Second
	DefaultRetryInterval    = 3 * time.Second
)

// Engine API versions of the K/V secrets engine.
const (
	EngineV1 = "v1"
	EngineV2 = "v2"
)

// Config is the configuration of a Vault (or OpenBao) K/V key store.
//
// The zero value of every optional field selects the documented default.
// A Config must not be modified after it has been passed to [Connect].
type Config struct {
	// Endpoint is the Vault address, e.g. https://127.0.0.1:8200. Required.
	Endpoint string

	// Engine is the mount path of the K/V engine. Empty means "kv".
	Engine string

	// EngineVersion is the K/V engine API version, "v1" or "v2".
	// Empty means "v1".
	EngineVersion string

	// Namespace is sent as X-Vault-Namespace on all K/V and transit calls,
	// never on health checks. Empty means no header.
	Namespace string

	// Prefix is a path prefix inside the K/V engine. Empty means none.
	Prefix string

	// Transit, if not nil, wraps stored values with a Vault transit key.
	Transit *Transit

	// AppRole and Kubernetes are the authentication methods. Exactly one
	// of them must be set.
	AppRole    *AppRole
	Kubernetes *Kubernetes

	// TLS configures the connection to Vault.
	TLS TLS

	// StatusPing is the interval of the background seal check. Zero means
	// 15s; negative disables the check.
	StatusPing time.Duration

	// MinTokenTTL: a token whose TTL is below it is replaced by a fresh
	// login at its renewal point instead of being renewed. Zero means 30s
	// (as upstream); negative means tokens are always renewed while Vault
	// allows it.
	MinTokenTTL time.Duration

	// RetryInterval is the wait after a failed login or renewal. Zero means
	// 3s.
	RetryInterval time.Duration

	// Logger receives token lifecycle events (never tokens or values).
	// Nil means slog.Default().
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Transit configures the optional second encryption layer.
type Transit struct {
	Engine string // mount path; empty means "transit"
	Key    string // transit key name; required
}

// AppRole configures AppRole authentication.
type AppRole struct {
	Engine    string // auth mount; empty means "approle"
	Namespace string // login namespace; empty means the store namespace, "/" the root namespace
	ID        string // role_id; required
	Secret    string // secret_id; required
}

// Kubernetes configures Kubernetes authentication.
type Kubernetes struct {
	Engine    string // auth mount; empty means "kubernetes"
	Namespace string // login namespace; empty means the store namespace, "/" the root namespace
	Role      string // login role

	// JWT is the service account token, or the path of a file holding it
	// if the value contains a '/'. The file is read again on every login.
	JWT string
}

// TLS configures the client side of the TLS connection to Vault.
type TLS struct {
	KeyFile  string // client private key (PEM); set with CertFile or not at all
	CertFile string // client certificate (PEM)
	CAPath   string // CA certificate file or directory; empty means system roots
}

// Errors of [Config.Validate] and [Connect] for an invalid [Config]. Their
// texts are upstream's (spec config.md §9.2): a configuration file reports
// them with its file and line.
var (
	ErrNoEndpoint      = errors.New("kesconf: invalid vault keystore: no endpoint specified")
	ErrEngineVersion   = errors.New("vault: invalid engine API version")
	ErrNoTransitKey    = errors.New("kesconf: invalid vault keystore: no transit key specified")
	ErrNoAuth          = errors.New("kesconf: invalid vault keystore: no authentication method specified")
	ErrManyAuth        = errors.New("kesconf: invalid vault keystore: more than one authentication method specified")
	ErrNoAppRoleID     = errors.New("kesconf: invalid vault keystore: no AppRole ID specified")
	ErrNoAppRoleSecret = errors.New("kesconf: invalid vault keystore: no AppRole secret specified")
	ErrNoJWT           = errors.New("kesconf: invalid vault keystore: no Kubernetes JWT specified")
	ErrTLSPair         = errors.New("kesconf: invalid vault keystore: tls.key and tls.cert must be specified together")
)

// Validate reports the first required field that is missing or
// inconsistent, in the order upstream checks them, as one of the errors
// above. It does not contact Vault. A nil Config has no endpoint.
func (c *Config) Validate() error {
	switch {
	case c == nil || c.Endpoint == "":
		return ErrNoEndpoint
	case c.EngineVersion != "" && c.EngineVersion != EngineV1 && c.EngineVersion != EngineV2:
		return ErrEngineVersion
	case c.Transit != nil && c.Transit.Key == "":
		return ErrNoTransitKey
	case c.AppRole == nil && c.Kubernetes == nil:
		return ErrNoAuth
	case c.AppRole != nil && c.Kubernetes != nil:
		return ErrManyAuth
	case c.AppRole != nil && c.AppRole.ID == "":
		return ErrNoAppRoleID
	case c.AppRole != nil && c.AppRole.Secret == "":
		return ErrNoAppRoleSecret
	case c.Kubernetes != nil && c.Kubernetes.JWT == "":
		return ErrNoJWT
	case (c.TLS.KeyFile == "") != (c.TLS.CertFile == ""):
		return ErrTLSPair
	}
	return nil
}

// settings is a validated Config with all defaults applied.
type settings struct {
	Config
	v2         bool
	transit    Transit
	loginNS    string // "" = no header
	loginPath  string
	authMethod string
}

func (c *Config) settings() (*settings, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, err := url.Parse(c.Endpoint); err != nil {
		return nil, fmt.Errorf("vault: invalid endpoint: %w", err)
	}
	s := &settings{Config: *c, v2: c.EngineVersion == EngineV2}
	if s.Engine == "" {
		s.Engine = DefaultEngine
	}
	if s.Transit != nil {
		s.transit = *s.Transit
		if s.transit.Engine == "" {
			s.transit.Engine = DefaultTransitEngine
		}
	}
	if s.AppRole != nil {
		s.authMethod = "approle"
		s.loginPath = loginPath(s.AppRole.Engine, DefaultAppRoleEngine)
		s.loginNS = loginNamespace(s.AppRole.Namespace, s.Namespace)
	} else {
		s.authMethod = "kubernetes"
		s.loginPath = loginPath(s.Kubernetes.Engine, DefaultKubernetesEngine)
		s.loginNS = loginNamespace(s.Kubernetes.Namespace, s.Namespace)
	}
	if s.StatusPing == 0 {
		s.StatusPing = DefaultStatusPing
	}
	if s.MinTokenTTL == 0 {
		s.MinTokenTTL = DefaultMinTokenTTL
	}
	if s.RetryInterval <= 0 {
		s.RetryInterval = DefaultRetryInterval
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s, nil
}

func loginPath(engine, def string) string {
	if engine == "" {
		engine = def
	}
	return "auth/" + strings.Trim(engine, "/") + "/login"
}

// loginNamespace returns the namespace header for logins: the method's own
// namespace, else the store's; "/" selects the root namespace (no header).
func loginNamespace(method, store string) string {
	if method == "" {
		method = store
	}
	if method == "/" {
		return ""
	}
	return method
}
