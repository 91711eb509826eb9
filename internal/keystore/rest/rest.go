// Package rest is the HTTP plumbing shared by the key stores that speak a
// vendor's JSON REST API directly (Fortanix DSM, Thales CipherTrust, Entrust
// KeyControl): a TLS client configuration from a CA file or directory, a
// JSON request with bounded, context-honouring retries whose response bodies
// are always read (bounded) and closed, and a login session renewed by a
// goroutine that its owner stops.
//
// It knows nothing of any vendor: status codes are mapped to store errors by
// the stores. It imports the keystore contract and the standard library only.
package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openkes/kes/internal/keystore"
)

// MaxBody is the largest response body read (4 MiB: a 1 MiB value base64
// encoded twice, with room for JSON around it). Longer bodies are errors.
const MaxBody = 4 << 20

// Retry policy defaults.
const (
	DefaultAttempts   = 4                      // tries per request, the first included
	DefaultBackoff    = 100 * time.Millisecond // wait before the second try; doubled after each try
	MaxBackoff        = 2 * time.Second        // cap of one computed wait
	MaxRetryAfter     = 5 * time.Second        // cap of a server's Retry-After
	defaultTLSTimeout = 10 * time.Second
)

// ErrBodyTooLarge is wrapped by the error for a response over [MaxBody].
var ErrBodyTooLarge = errors.New("response body exceeds 4 MiB")

// TLSConfig returns a client TLS configuration (TLS 1.2 or newer) that
// trusts the PEM certificates of caPath, a file or a directory of files
// (not recursive). An empty caPath means the system roots.
func TLSConfig(caPath string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPath == "" {
		return conf, nil
	}
	fi, err := os.Stat(caPath)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	files := []string{caPath}
	if fi.IsDir() {
		entries, err := os.ReadDir(caPath)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(caPath, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("tls ca: no PEM certificate in %s", caPath)
	}
	conf.RootCAs = pool
	return conf, nil
}

// NewHTTPClient returns an HTTP client with its own connection pool over
// conf. It never follows redirects, so credentials are sent to the
// configured endpoint only.
func NewHTTPClient(conf *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     conf,
			TLSHandshakeTimeout: defaultTLSTimeout,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Client sends JSON requests to one endpoint. Its fields must not be
// changed once it is in use; it is safe for concurrent use.
type Client struct {
	// Endpoint is the base URL; request paths are appended to its path.
	Endpoint *url.URL

	// HTTP sends the requests. Its transport is closed by [Client.Close].
	HTTP *http.Client

	// Attempts is the number of tries per request. Zero means
	// DefaultAttempts.
	Attempts int

	// Backoff is the wait before the second try, doubled after each try
	// up to MaxBackoff. Zero means DefaultBackoff.
	Backoff time.Duration
}

// NewClient parses endpoint (an http or https URL) and returns a client
// whose connections are verified by conf.
func NewClient(endpoint string, conf *tls.Config) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("invalid endpoint: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid endpoint %q: want https://host[:port]", endpoint)
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return &Client{Endpoint: u, HTTP: NewHTTPClient(conf)}, nil
}

// Close closes the idle connections of the client's transport.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// Request is one API call.
type Request struct {
	Method string
	// Path is the escaped path below the endpoint, starting with '/'.
	Path string
	// Query is the encoded query string, without '?'.
	Query string
	// Body is encoded as JSON if not nil.
	Body any
	// Auth, if not nil, sets the credentials on each try, so a renewed
	// token is used by a retry.
	Auth func(http.Header)
	// Idempotent requests are also retried on any 5xx and on network
	// errors. Others are retried only on 429 and 503, which say that the
	// request was not processed, so a retry never repeats a create or
	// delete the server performed.
	Idempotent bool
}

// Response is a complete response: its body has been read and closed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode decodes the JSON body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("invalid response body (status %d): %w", r.Status, err)
	}
	return nil
}

// Do sends r, retrying throttled and failed tries with bounded backoff
// while ctx allows. It returns the last response, whatever its status, or
// an error wrapping a [*keystore.UnreachableError] if no response came
// (ctx's error is in the chain when ctx ended).
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = json.Marshal(r.Body); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	for try := 1; ; try++ {
		resp, err := c.once(ctx, r, body)
		if try >= attempts || !retryable(r, resp, err) || ctx.Err() != nil {
			return resp, err
		}
		// Half the wait is random, so that clients throttled together do
		// not come back together.
		wait := min(backoff<<(try-1), MaxBackoff)
		wait = wait/2 + rand.N(wait/2+1)
		if resp != nil {
			if ra, ok := retryAfter(resp.Header); ok {
				wait = ra
			}
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			return resp, err // no time left for another try
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &keystore.UnreachableError{Err: ctx.Err()}
		case <-t.C:
		}
	}
}

func retryable(r *Request, resp *Response, err error) bool {
	if err != nil {
		// Only network failures: a bad certificate stays bad, and a body
		// over the limit stays over it.
		var cert *tls.CertificateVerificationError
		return r.Idempotent && keystore.IsUnreachable(err) && !errors.As(err, &cert)
	}
	switch {
	case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable:
		return true
	case resp.Status >= 500:
		return r.Idempotent
	}
	return false
}

func retryAfter(h http.Header) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, MaxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), MaxRetryAfter), true
	}
	return 0, false
}

func (c *Client) once(ctx context.Context, r *Request, body []byte) (*Response, error) {
	p, err := url.PathUnescape(r.Path)
	if err != nil {
		return nil, fmt.Errorf("invalid request path: %w", err)
	}
	u := *c.Endpoint
	u.Path = c.Endpoint.Path + p
	u.RawPath = c.Endpoint.EscapedPath() + r.Path
	u.RawQuery = r.Query
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Auth != nil {
		r.Auth(req.Header)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// url.Error names the URL, which holds no secret: names travel in
		// bodies or are validated path segments.
		return nil, &keystore.UnreachableError{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("read response: %w", err)}
	}
	if len(b) > MaxBody {
		return nil, ErrBodyTooLarge
	}
	if err := ctx.Err(); err != nil {
		// The caller has given up: an answer that raced the deadline is
		// not one it waits for, and a create it reports would be
		// answered as timed out anyway.
		return nil, &keystore.UnreachableError{Err: err}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// StatusError is an answer with an unexpected status. Message is the
// vendor's error text, cut to 200 bytes; vendors do not echo stored values
// or credentials in them.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("status %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("status %d: %s", e.Status, e.Message)
}

// NewStatusError returns the error for resp with the vendor message msg.
// 502, 503 and 504 (the vendor or a proxy in front of it is down) are
// wrapped in a [*keystore.UnreachableError].
func NewStatusError(resp *Response, msg string) error {
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "…"
	}
	err := &StatusError{Status: resp.Status, Message: msg}
	switch resp.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &keystore.UnreachableError{Err: err}
	}
	return err
}

// ErrInvalidName is wrapped by the error for a name a store cannot hold.
var ErrInvalidName = errors.New("invalid key name")

// CheckName accepts names of 1 to maxLen bytes of valid UTF-8 without
// control characters: what a vendor's JSON name field holds unchanged.
func CheckName(name string, maxLen int) error {
	if name == "" || len(name) > maxLen || !utf8.ValidString(name) {
		return ErrInvalidName
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return ErrInvalidName
		}
	}
	return nil
}

// CheckPathName is [CheckName] for a name that is also one URL path
// segment: it rejects "." and ".." and the characters '/', '\\', '?', '#',
// '%' and ';', which servers and proxies may treat as path or query syntax
// even when escaped, so that no name can reach another object or endpoint.
// Other characters are escaped with url.PathEscape.
func CheckPathName(name string, maxLen int) error {
	if err := CheckName(name, maxLen); err != nil {
		return err
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/\\?#%;") {
		return ErrInvalidName
	}
	return nil
}
