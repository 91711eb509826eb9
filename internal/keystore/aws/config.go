package aws

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by [Config] when a field is zero.
const (
	// DefaultMaxAttempts is the number of attempts of one call when AWS
	// throttles or answers 5xx: the first and three retries, as upstream's
	// SDK did.
	DefaultMaxAttempts = 4

	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 20 * time.Second
)

// Config is the configuration of an AWS Secrets Manager key store (spec
// config.md §9.6). It holds credentials: print it with [Config.String],
// which leaves them out. A Config must not be modified after it has been
// passed to [Connect].
type Config struct {
	// Endpoint is the SecretsManager endpoint, e.g.
	// secretsmanager.us-east-2.amazonaws.com. Without a scheme, https://
	// is used. Required.
	Endpoint string

	// Region is the AWS region. Required.
	Region string

	// KMSKey is the KMS key that encrypts new secrets. Empty means the
	// AWS default key.
	KMSKey string

	// AccessKey, SecretKey and SessionToken are static credentials. All
	// empty means the AWS SDK default chain (environment, shared
	// credentials file, ECS and EC2 roles); the shared config file is not
	// read, as upstream.
	AccessKey, SecretKey, SessionToken string

	// MaxAttempts bounds the attempts of one call that AWS throttles or
	// answers with a 5xx. Zero means DefaultMaxAttempts; 1 disables
	// retries. The caller's context bounds the attempts and the waits
	// between them in any case.
	MaxAttempts int

	// MaxBackoff caps the (jittered, exponential) wait between attempts.
	// Zero means DefaultMaxBackoff. Tests set it low.
	MaxBackoff time.Duration
}

// String returns "AWS SecretsManager: <endpoint>", the banner line, so that
// printing a Config never prints a credential.
func (c *Config) String() string { return "AWS SecretsManager: " + c.Endpoint }

// Errors of [Connect] for an invalid [Config].
var (
	ErrNoEndpoint = errors.New("aws: no endpoint specified")
	ErrNoRegion   = errors.New("aws: no region specified")
)

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	endpoint string // URL with scheme, for the SDK and the status probe
}

func (c *Config) settings() (*settings, error) {
	switch {
	case c == nil || c.Endpoint == "":
		return nil, ErrNoEndpoint
	case c.Region == "":
		return nil, ErrNoRegion
	}
	s := &settings{Config: *c, endpoint: c.Endpoint}
	if !strings.Contains(s.endpoint, "://") {
		s.endpoint = "https://" + s.endpoint
	}
	u, err := url.Parse(s.endpoint)
	if err != nil {
		return nil, fmt.Errorf("aws: invalid endpoint: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("aws: invalid endpoint %q: want [https://]host[:port]", c.Endpoint)
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	return s, nil
}

func (s *settings) static() bool {
	return s.AccessKey != "" || s.SecretKey != "" || s.SessionToken != ""
}
