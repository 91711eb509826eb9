package kmip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the port of an endpoint that names none: KMIP's
// registered port.
const DefaultPort = "5696"

// Config is the kmip keystore (an OpenKES extension; docs/keystores/kmip.md).
// It holds a secret (Password) and names the client's private key: never
// log it. A Config must not be changed after Connect.
type Config struct {
	// Endpoints are the KMIP servers, host or host:port (port 5696 if
	// none), tried in order when a connection is opened: replicas of one
	// key store, never independent servers. At least one is required.
	Endpoints []string

	// CertFile and KeyFile are the client certificate and its private key
	// (PEM). KMIP servers authenticate clients by certificate, so both
	// are required.
	CertFile, KeyFile string

	// CAPath is a file or directory of root certificates for the
	// servers' certificates. Empty means the system roots.
	CAPath string

	// Username and Password, if Username is not empty, are sent in every
	// request's Authentication header (KMIP's Username and Password
	// credential), for servers that want them besides the certificate.
	Username, Password string
}

// String describes c without its password.
func (c *Config) String() string {
	return fmt.Sprintf("KMIP: %s (user %q)", strings.Join(c.Endpoints, ","), c.Username)
}

// Errors of [Config.Validate], in the words of the configuration file's
// errors (internal/keystore/stores adds file and line).
var (
	ErrNoEndpoint      = errors.New("kesconf: invalid KMIP keystore: no endpoint specified")
	ErrInvalidEndpoint = errors.New("kesconf: invalid KMIP keystore: invalid endpoint")
	ErrNoClientCert    = errors.New("kesconf: invalid KMIP keystore: no client certificate (tls.cert) specified")
	ErrNoClientKey     = errors.New("kesconf: invalid KMIP keystore: no client private key (tls.key) specified")
	ErrNoUsername      = errors.New("kesconf: invalid KMIP keystore: password specified without username")
)

// Validate checks that c names what a connection needs. It reads no file.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return ErrNoEndpoint
	}
	for _, e := range c.Endpoints {
		if _, err := endpointAddr(e); err != nil {
			return err
		}
	}
	switch {
	case c.CertFile == "":
		return ErrNoClientCert
	case c.KeyFile == "":
		return ErrNoClientKey
	case c.Password != "" && c.Username == "":
		return ErrNoUsername
	}
	return nil
}

// endpointAddr returns the host:port of an endpoint given as host,
// host:port, [v6] or [v6]:port.
func endpointAddr(e string) (string, error) {
	bad := fmt.Errorf("%w %q: want host or host:port", ErrInvalidEndpoint, e)
	if e == "" || strings.Contains(e, "://") || strings.ContainsAny(e, "/ ") {
		return "", bad
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		// No port: a bare host or a bracketed IPv6 address.
		host = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(e, "[")) {
			return "", bad
		}
		port = DefaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return "", bad
	}
	return net.JoinHostPort(host, port), nil
}
