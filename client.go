package kes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is a client of one or more KES servers. Each request goes to one
// endpoint; when an endpoint fails, the request moves on to the next one
// and the failed endpoint is parked for [ParkDuration].
//
// A Client is safe for concurrent use. Create it with [NewClient].
type Client struct {
	endpoints []*url.URL
	http      *http.Client
	lb        *balancer

	// sleep waits between retries; tests replace it so they never sleep.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a [Client] in [NewClient].
type Option func(*options)

type options struct {
	apiKey   *APIKey
	cert     *tls.Certificate
	rootCAs  *x509.CertPool
	insecure bool
}

// WithAPIKey makes the client authenticate with a certificate derived from
// key (see [GenerateCertificate]). It cannot be combined with [WithCertificate].
func WithAPIKey(key APIKey) Option { return func(o *options) { o.apiKey = &key } }

// WithCertificate makes the client authenticate with cert, for instance one
// from [LoadClientCertificate]. The client does not modify cert.
func WithCertificate(cert tls.Certificate) Option { return func(o *options) { o.cert = &cert } }

// WithRootCAs sets the CAs that server certificates are verified against.
// Without it the system roots are used.
func WithRootCAs(pool *x509.CertPool) Option { return func(o *options) { o.rootCAs = pool } }

// WithInsecureSkipVerify disables the verification of server certificates.
// Use it for development servers only.
func WithInsecureSkipVerify() Option { return func(o *options) { o.insecure = true } }

// Defaults of the HTTP transport of a [Client] (spec cli.md §2.1).
const (
	DialTimeout         = 30 * time.Second
	TLSHandshakeTimeout = 10 * time.Second
	IdleConnTimeout     = 90 * time.Second
	maxIdleConns        = 100
)

// NewClient returns a client of the servers at endpoints. Each endpoint is
// normalised as the kes CLI does it: surrounding spaces are trimmed, a
// leading "http://" is removed and "https://" is added if missing, so
// "127.0.0.1:7373" becomes "https://127.0.0.1:7373". Empty endpoints are
// skipped; at least one must remain.
//
// The client speaks TLS 1.2 or newer and tries HTTP/2. The client
// certificate, from [WithAPIKey] or [WithCertificate], is sent with every
// handshake even if the server's list of acceptable CAs does not name its
// issuer.
func NewClient(endpoints []string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	urls, err := parseEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            o.rootCAs,
		InsecureSkipVerify: o.insecure,
	}
	cert, err := o.certificate()
	if err != nil {
		return nil, err
	}
	if cert != nil {
		tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConns,
		IdleConnTimeout:       IdleConnTimeout,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
	}
	return &Client{
		endpoints: urls,
		http:      &http.Client{Transport: transport},
		lb:        newBalancer(len(urls)),
		sleep:     sleepCtx,
	}, nil
}

func (o *options) certificate() (*tls.Certificate, error) {
	switch {
	case o.apiKey != nil && o.cert != nil:
		return nil, errors.New("kes: API key and client certificate cannot be used at the same time")
	case o.apiKey != nil:
		if o.apiKey.key == nil {
			return nil, errors.New("kes: invalid API key: empty")
		}
		cert, err := GenerateCertificate(*o.apiKey, nil)
		if err != nil {
			return nil, fmt.Errorf("kes: generate client certificate: %w", err)
		}
		return &cert, nil
	}
	return o.cert, nil
}

// NormalizeEndpoint returns the endpoint as a [Client] uses it: trimmed,
// without a leading "http://" and with "https://" added when it has no
// scheme.
func NormalizeEndpoint(endpoint string) string {
	endpoint = strings.TrimSpace(endpoint)
	endpoint = strings.TrimPrefix(endpoint, "http://")
	if endpoint != "" && !strings.HasPrefix(endpoint, "https://") {
		endpoint = "https://" + endpoint
	}
	return strings.TrimSuffix(endpoint, "/")
}

func parseEndpoints(endpoints []string) ([]*url.URL, error) {
	var urls []*url.URL
	for _, e := range endpoints {
		e = NormalizeEndpoint(e)
		if e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || u.Scheme != "https" || strings.Contains(e[len("https://"):], "://") {
			return nil, fmt.Errorf("kes: invalid endpoint '%s'", e)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return nil, errors.New("kes: no endpoint specified")
	}
	return urls, nil
}

// Endpoints returns the normalised endpoints of the client, for instance
// "https://127.0.0.1:7373". The caller owns the returned slice.
func (c *Client) Endpoints() []string {
	s := make([]string, len(c.endpoints))
	for i, u := range c.endpoints {
		s[i] = u.String()
	}
	return s
}

// Close closes idle connections. The client stays usable; requests in
// flight and open log streams are not affected.
func (c *Client) Close() { c.http.CloseIdleConnections() }
