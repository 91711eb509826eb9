package gcp

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// Config is the gcp.secretmanager key store of a KES config file (spec
// config.md §9.5). It holds a secret (Credentials.PrivateKey): [Config.String]
// never prints it.
type Config struct {
	// ProjectID is the GCP project. Required.
	ProjectID string

	// Endpoint is the API endpoint (host:port). Empty means the SDK default,
	// secretmanager.googleapis.com:443.
	Endpoint string

	// Scopes are the OAuth2 scopes. Nil means the SDK default
	// (https://www.googleapis.com/auth/cloud-platform).
	Scopes []string

	// Credentials is the service account. A zero value means Application
	// Default Credentials; otherwise all four fields are set.
	Credentials Credentials

	// testOnlyRootCAs, if not nil, replaces the system roots for the API
	// endpoint and the status probe, so tests can run a TLS fake on
	// loopback. Set by export_test.go.
	testOnlyRootCAs *x509.CertPool
}

// Credentials is a service account key of [Config]: the fields of the JSON
// key file Google issues.
type Credentials struct {
	ClientEmail  string
	ClientID     string
	PrivateKeyID string
	// PrivateKey is the PEM key. Literal `\n` sequences (as YAML files
	// often carry them) are turned into newlines.
	PrivateKey string
}

// String returns upstream's banner line, "GCP SecretManager: Project=<id>",
// so that printing the configuration never prints a credential.
func (c *Config) String() string { return "GCP SecretManager: Project=" + c.ProjectID }

const (
	defaultEndpoint = "secretmanager.googleapis.com:443"
	defaultProbeURL = "https://secretmanager.googleapis.com"
)

// Errors of [Config.Validate] and [Connect] for an invalid [Config]. Their
// texts are upstream's (spec config.md §9.5): a configuration file reports
// them with its file and line, ErrNoProjectID at the section and the others
// at its credentials.
var (
	ErrNoProjectID    = errors.New("kesconf: invalid GCP keystore: no project ID specified")
	ErrNoClientEmail  = errors.New("kesconf: invalid GCP keystore: no client email specified")
	ErrNoClientID     = errors.New("kesconf: invalid GCP keystore: no client ID specified")
	ErrNoPrivateKeyID = errors.New("kesconf: invalid GCP keystore: no private key ID specified")
	ErrNoPrivateKey   = errors.New("kesconf: invalid GCP keystore: no private key specified")
)

// Validate reports the first required field that is missing, in the order
// upstream checks them, as one of the errors above: the project, and all
// four credential fields if any is set. It does not contact the service. A
// nil Config has no project.
func (c *Config) Validate() error {
	if c == nil || c.ProjectID == "" {
		return ErrNoProjectID
	}
	if cr := c.Credentials; !cr.isZero() {
		switch {
		case cr.ClientEmail == "":
			return ErrNoClientEmail
		case cr.ClientID == "":
			return ErrNoClientID
		case cr.PrivateKeyID == "":
			return ErrNoPrivateKeyID
		case cr.PrivateKey == "":
			return ErrNoPrivateKey
		}
	}
	return nil
}

func (cr Credentials) isZero() bool { return cr == Credentials{} }

// probeURL is the URL the status probe GETs: the endpoint over HTTPS, or
// https://secretmanager.googleapis.com when none is set, as upstream.
func (c *Config) probeURL() string {
	switch {
	case c.Endpoint == "":
		return defaultProbeURL
	case strings.Contains(c.Endpoint, "://"):
		return c.Endpoint
	}
	return "https://" + c.Endpoint
}

// serviceAccountJSON returns the key file upstream KES synthesises from the
// credentials: type service_account with Google's fixed URLs.
func (c *Config) serviceAccountJSON() ([]byte, error) {
	cr := c.Credentials
	return json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  c.ProjectID,
		"private_key_id":              cr.PrivateKeyID,
		"private_key":                 strings.ReplaceAll(cr.PrivateKey, `\n`, "\n"),
		"client_email":                cr.ClientEmail,
		"client_id":                   cr.ClientID,
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://accounts.google.com/o/oauth2/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(cr.ClientEmail),
	})
}
