// Package gemalto implements a key store on the secrets vault of Thales
// CipherTrust Manager (formerly Gemalto KeySecure) through its REST API
// (spec config.md §9.4): every key is a secret of data type "seed" named
// after the key whose material is the stored key record, verbatim. That is
// upstream KES's layout, so secrets upstream created are served unchanged
// and vice versa.
//
// The store logs in with a refresh token and renews its JWT at half its
// lifetime in a goroutine that Close stops.
//
// The package imports internal/keystore and its REST helper, nothing else of
// this module.
package gemalto

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/rest"
)

var _ keystore.Store = (*Store)(nil)

// Config is the gemalto.keysecure keystore: Thales CipherTrust Manager /
// KeySecure (config.md §9.4). It holds a secret (Token): never log it. A
// Config must not be changed after Connect.
type Config struct {
	// Endpoint is the server URL. Required.
	Endpoint string

	// Token is the refresh token. Required.
	Token string

	// Domain is the login domain. Empty means the root domain.
	Domain string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

// String describes c without its refresh token.
func (c *Config) String() string {
	return fmt.Sprintf("Gemalto KeySecure: %s (domain %q)", c.Endpoint, c.Domain)
}

// Errors of [Connect] for an invalid [Config].
var (
	ErrNoEndpoint = errors.New("gemalto: no endpoint specified")
	ErrNoToken    = errors.New("gemalto: no token specified")
)

const (
	maxNameLen = 255 // one URL path segment
	pageSize   = 200 // secrets per list request, as upstream
	// loginRetry is the wait after a failed renewal, fixed as upstream.
	loginRetry = 5 * time.Second
	// fallbackRenew is the renewal interval for a JWT without a duration.
	fallbackRenew = 5 * time.Minute
	secretsPath   = "/api/v1/vault/secrets"
)

// binaryPrefix marks material that is not the value itself: secret material
// is a JSON string and cannot carry bytes that are not UTF-8, so such a
// value is stored as binaryPrefix + base64 (as the Vault store does). Key
// records are base64 or JSON text, so values written by KES are always
// stored verbatim, in upstream's layout.
const binaryPrefix = "openkes:base64:"

// Store is a key store on CipherTrust Manager. It is safe for concurrent
// use. Create it with [Connect] and release it with [Store.Close].
type Store struct {
	c       *rest.Client
	session *rest.Session
}

// Connect logs in with the refresh token and starts the JWT renewal.
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	switch {
	case c == nil || c.Endpoint == "":
		return nil, ErrNoEndpoint
	case c.Token == "":
		return nil, ErrNoToken
	}
	if logger == nil {
		logger = slog.Default()
	}
	conf, err := rest.TLSConfig(c.CAPath)
	if err != nil {
		return nil, fmt.Errorf("gemalto: %w", err)
	}
	client, err := rest.NewClient(c.Endpoint, conf)
	if err != nil {
		return nil, fmt.Errorf("gemalto: %w", err)
	}
	s := &Store{c: client}
	login := func(ctx context.Context, _ string) (string, time.Duration, error) {
		return s.login(ctx, c.Token, c.Domain)
	}
	s.session, err = rest.StartSession(ctx, rest.SessionConfig{
		Refresh: login, Retry: loginRetry, Fallback: fallbackRenew, Logger: logger, Store: "gemalto",
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("gemalto: connect: %w", err)
	}
	return s, nil
}

// login exchanges the refresh token for a JWT.
func (s *Store) login(ctx context.Context, token, domain string) (string, time.Duration, error) {
	resp, err := s.c.Do(ctx, &rest.Request{
		Method: http.MethodPost, Path: "/api/v1/auth/tokens", Idempotent: true,
		Body: map[string]string{"grant_type": "refresh_token", "refresh_token": token, "domain": domain},
	})
	if err != nil {
		return "", 0, fmt.Errorf("login: %w", err)
	}
	if resp.Status != http.StatusOK && resp.Status != http.StatusCreated {
		return "", 0, fmt.Errorf("login: %w", statusErr(resp))
	}
	var r struct {
		TokenType string `json:"token_type"`
		JWT       string `json:"jwt"`
		Duration  int64  `json:"duration"`
	}
	if err := resp.Decode(&r); err != nil {
		return "", 0, fmt.Errorf("login: %w", err)
	}
	if r.JWT == "" || (r.TokenType != "" && !strings.EqualFold(r.TokenType, "Bearer")) {
		return "", 0, errors.New("login: no bearer token in response")
	}
	return r.JWT, time.Duration(r.Duration) * time.Second, nil
}

// do sends r with the current JWT; if the server answers 401 (the JWT
// expired or was revoked) it logs in again once and retries.
func (s *Store) do(ctx context.Context, r *rest.Request) (*rest.Response, error) {
	return s.session.Do(ctx, s.c, r, func(h http.Header, tok string) { h.Set("Authorization", "Bearer "+tok) })
}

// Close stops the JWT renewal, waits for it and releases idle connections.
func (s *Store) Close() error {
	s.session.Close()
	s.c.Close()
	return nil
}

// Status sends GET to the endpoint: any HTTP answer means reachable.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	if _, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "", Idempotent: true}); err != nil {
		return keystore.State{}, fmt.Errorf("gemalto: status: %w", err)
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Create stores value as a new seed secret named name, or returns an error
// matching keystore.ErrExists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := rest.CheckPathName(name, maxNameLen); err != nil {
		return fmt.Errorf("gemalto: create key %q: %w", name, err)
	}
	resp, err := s.do(ctx, &rest.Request{
		Method: http.MethodPost, Path: secretsPath,
		Body: map[string]string{"dataType": "seed", "material": encodeValue(value), "name": name},
	})
	if err != nil {
		return fmt.Errorf("gemalto: create key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusCreated, http.StatusOK:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("gemalto: create key %q: %w", name, keystore.ErrExists)
	}
	return fmt.Errorf("gemalto: create key %q: %w", name, statusErr(resp))
}

// Get exports the material of the secret named name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := rest.CheckPathName(name, maxNameLen); err != nil {
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, err)
	}
	resp, err := s.do(ctx, &rest.Request{
		Method: http.MethodPost, Path: secretsPath + "/" + url.PathEscape(name) + "/export", Query: "type=name", Idempotent: true,
	})
	if err != nil {
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, keystore.ErrNotFound)
	default:
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, statusErr(resp))
	}
	var r struct {
		Material *string `json:"material"`
	}
	if err := resp.Decode(&r); err != nil {
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, err)
	}
	if r.Material == nil {
		return nil, fmt.Errorf("gemalto: read key %q: no material in response", name)
	}
	v, err := decodeValue(*r.Material)
	if err != nil {
		return nil, fmt.Errorf("gemalto: read key %q: %w", name, err)
	}
	return v, nil
}

// Delete removes the secret named name. Deleting a missing key succeeds,
// as upstream.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := rest.CheckPathName(name, maxNameLen); err != nil {
		return fmt.Errorf("gemalto: delete key %q: %w", name, err)
	}
	resp, err := s.do(ctx, &rest.Request{
		Method: http.MethodDelete, Path: secretsPath + "/" + url.PathEscape(name), Query: "type=name", Idempotent: true,
	})
	if err != nil {
		return fmt.Errorf("gemalto: delete key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return fmt.Errorf("gemalto: delete key %q: %w", name, statusErr(resp))
}

// List reads every page of the vault's listing (200 per request, skip
// advanced until it reaches total) and answers from the names, sorted.
// CipherTrust filters by neither name prefix nor start.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	seen := map[string]bool{}
	var names []string
	for skip := 0; ; {
		resp, err := s.do(ctx, &rest.Request{
			Method: http.MethodGet, Path: secretsPath, Query: fmt.Sprintf("limit=%d&skip=%d", pageSize, skip), Idempotent: true,
		})
		if err != nil {
			return nil, "", fmt.Errorf("gemalto: list keys: %w", err)
		}
		if resp.Status != http.StatusOK {
			return nil, "", fmt.Errorf("gemalto: list keys: %w", statusErr(resp))
		}
		var page struct {
			Total     int `json:"total"`
			Resources []struct {
				Name string `json:"name"`
			} `json:"resources"`
		}
		if err := resp.Decode(&page); err != nil {
			return nil, "", fmt.Errorf("gemalto: list keys: %w", err)
		}
		for _, r := range page.Resources {
			// A secret created or deleted while paging shifts the pages:
			// a name may come twice.
			if r.Name != "" && !seen[r.Name] {
				seen[r.Name] = true
				names = append(names, r.Name)
			}
		}
		skip += len(page.Resources)
		if len(page.Resources) == 0 || skip >= page.Total {
			break
		}
	}
	page, next := keystore.Page(names, prefix, continueAt, n)
	return page, next, nil
}

func encodeValue(v []byte) string {
	if utf8.Valid(v) && !strings.HasPrefix(string(v), binaryPrefix) {
		return string(v)
	}
	return binaryPrefix + base64.StdEncoding.EncodeToString(v)
}

func decodeValue(s string) ([]byte, error) {
	if !strings.HasPrefix(s, binaryPrefix) {
		return []byte(s), nil
	}
	b, err := base64.StdEncoding.DecodeString(s[len(binaryPrefix):])
	if err != nil {
		return nil, errors.New("stored binary value is not base64")
	}
	return b, nil
}

// statusErr returns the error for a CipherTrust error answer
// {"code", "codeDesc"}.
func statusErr(resp *rest.Response) error {
	var e struct {
		Code     int    `json:"code"`
		CodeDesc string `json:"codeDesc"`
	}
	_ = resp.Decode(&e)
	msg := e.CodeDesc
	if e.Code != 0 {
		msg = fmt.Sprintf("code %d: %s", e.Code, e.CodeDesc)
	}
	return rest.NewStatusError(resp, msg)
}
