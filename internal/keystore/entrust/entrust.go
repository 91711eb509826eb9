// Package entrust implements a key store on a box of an Entrust KeyControl
// secrets vault through its REST API (spec config.md §9.8): every key is a
// secret named after the key whose secret_data is the stored key record,
// base64 encoded once more. That is upstream KES's layout, so secrets
// upstream created are served unchanged and vice versa.
//
// The store logs in with a user name and password and renews its session
// token at half its lifetime (logging in again if renewal fails) in a
// goroutine that Close stops.
//
// The package imports internal/keystore and its REST helper, nothing else of
// this module.
package entrust

import (
	"context"
	"encoding/base64"
	"encoding/json"
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

// Config is the entrust.keycontrol keystore (config.md §9.8). It holds a
// secret (Password): never log it. A Config must not be changed after
// Connect.
type Config struct {
	// Endpoint, VaultID and BoxID (an id or a name) locate the box.
	// Required.
	Endpoint, VaultID, BoxID string

	// Username and Password are the login. Required.
	Username, Password string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

// String describes c without its password.
func (c *Config) String() string {
	return fmt.Sprintf("Entrust KeyControl: %s (vault %q, box %q, user %q)", c.Endpoint, c.VaultID, c.BoxID, c.Username)
}

// Errors of [Connect] for an invalid [Config].
var (
	ErrNoEndpoint = errors.New("entrust: no endpoint specified")
	ErrNoVaultID  = errors.New("entrust: no vault ID specified")
	ErrNoBoxID    = errors.New("entrust: no box ID specified")
	ErrNoUsername = errors.New("entrust: no username specified")
	ErrNoPassword = errors.New("entrust: no password specified")
)

const (
	maxNameLen = 4096
	pageSize   = 256 // max_items per list request, as upstream
	// renewRetry is the wait after a failed renewal and login.
	renewRetry = 5 * time.Second
	// fallbackRenew is the renewal interval when the token's expiry is
	// unknown, as upstream.
	fallbackRenew = 5 * time.Minute
	api           = "/vault/1.0/"
)

// Store is a key store on a KeyControl box. It is safe for concurrent use.
// Create it with [Connect] and release it with [Store.Close].
type Store struct {
	c       *rest.Client
	box     string
	session *rest.Session
}

// Connect logs in and starts the token renewal.
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	switch {
	case c == nil || c.Endpoint == "":
		return nil, ErrNoEndpoint
	case c.VaultID == "":
		return nil, ErrNoVaultID
	case c.BoxID == "":
		return nil, ErrNoBoxID
	case c.Username == "":
		return nil, ErrNoUsername
	case c.Password == "":
		return nil, ErrNoPassword
	}
	if err := rest.CheckPathName(c.VaultID, 255); err != nil {
		return nil, fmt.Errorf("entrust: vault ID %q: %w", c.VaultID, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	conf, err := rest.TLSConfig(c.CAPath)
	if err != nil {
		return nil, fmt.Errorf("entrust: %w", err)
	}
	client, err := rest.NewClient(c.Endpoint, conf)
	if err != nil {
		return nil, fmt.Errorf("entrust: %w", err)
	}
	s := &Store{c: client, box: c.BoxID}
	refresh := func(ctx context.Context, current string) (string, time.Duration, error) {
		if current != "" {
			tok, ttl, err := s.renew(ctx, current)
			if err == nil {
				return tok, ttl, nil
			}
			logger.Info("key store token renewal failed, logging in again", "store", "entrust", "err", err)
		}
		return s.login(ctx, c.VaultID, c.Username, c.Password)
	}
	s.session, err = rest.StartSession(ctx, rest.SessionConfig{
		Refresh: refresh, Retry: renewRetry, Fallback: fallbackRenew, Logger: logger, Store: "entrust",
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("entrust: connect: %w", err)
	}
	return s, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresAt   string `json:"expires_at"`
}

func (t *tokenResponse) ttl() time.Duration {
	exp, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil {
		return 0 // unknown: renewed at the fallback interval
	}
	return time.Until(exp)
}

func (s *Store) login(ctx context.Context, vault, user, password string) (string, time.Duration, error) {
	resp, err := s.c.Do(ctx, &rest.Request{
		Method: http.MethodPost, Path: api + "Login/" + url.PathEscape(vault) + "/", Idempotent: true,
		Body: map[string]string{"username": user, "password": password},
	})
	if err != nil {
		return "", 0, fmt.Errorf("login: %w", err)
	}
	return tokenFrom("login", resp)
}

func (s *Store) renew(ctx context.Context, token string) (string, time.Duration, error) {
	resp, err := s.c.Do(ctx, &rest.Request{
		Method: http.MethodPost, Path: api + "Renew/", Body: struct{}{}, Idempotent: true,
		Auth: func(h http.Header) { h.Set("X-Vault-Auth", token) },
	})
	if err != nil {
		return "", 0, fmt.Errorf("renew: %w", err)
	}
	return tokenFrom("renew", resp)
}

func tokenFrom(op string, resp *rest.Response) (string, time.Duration, error) {
	if resp.Status != http.StatusOK {
		return "", 0, fmt.Errorf("%s: %w", op, statusErr(resp))
	}
	var t tokenResponse
	if err := resp.Decode(&t); err != nil {
		return "", 0, fmt.Errorf("%s: %w", op, err)
	}
	if t.AccessToken == "" {
		return "", 0, fmt.Errorf("%s: no access token in response", op)
	}
	return t.AccessToken, t.ttl(), nil
}

// call POSTs body to the API operation op with the session token; if the
// server answers 401 it logs in again once and repeats the call.
func (s *Store) call(ctx context.Context, op string, body any, idempotent bool) (*rest.Response, error) {
	r := &rest.Request{Method: http.MethodPost, Path: api + op + "/", Body: body, Idempotent: idempotent}
	return s.session.Do(ctx, s.c, r, func(h http.Header, tok string) { h.Set("X-Vault-Auth", tok) })
}

// Close stops the token renewal, waits for it and releases idle
// connections.
func (s *Store) Close() error {
	s.session.Close()
	s.c.Close()
	return nil
}

// Status asks for the box (GetBox).
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	resp, err := s.call(ctx, "GetBox", map[string]string{"box_id": s.box}, true)
	if err != nil {
		return keystore.State{}, fmt.Errorf("entrust: status: %w", err)
	}
	if resp.Status != http.StatusOK {
		return keystore.State{}, fmt.Errorf("entrust: status: %w", statusErr(resp))
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Create stores value as a new secret named name, or returns an error
// matching keystore.ErrExists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return fmt.Errorf("entrust: create key %q: %w", name, err)
	}
	body := map[string]string{"box_id": s.box, "name": name, "secret_data": base64.StdEncoding.EncodeToString(value)}
	resp, err := s.call(ctx, "CreateSecret", body, false)
	if err != nil {
		return fmt.Errorf("entrust: create key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusOK, http.StatusCreated:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("entrust: create key %q: %w", name, keystore.ErrExists)
	}
	return fmt.Errorf("entrust: create key %q: %w", name, statusErr(resp))
}

// Get checks the secret named name out.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return nil, fmt.Errorf("entrust: read key %q: %w", name, err)
	}
	resp, err := s.call(ctx, "CheckoutSecret", map[string]string{"box_id": s.box, "secret_id": name}, true)
	if err != nil {
		return nil, fmt.Errorf("entrust: read key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("entrust: read key %q: %w", name, keystore.ErrNotFound)
	default:
		return nil, fmt.Errorf("entrust: read key %q: %w", name, statusErr(resp))
	}
	var r struct {
		SecretData string `json:"secret_data"`
	}
	if err := resp.Decode(&r); err != nil {
		return nil, fmt.Errorf("entrust: read key %q: %w", name, err)
	}
	v, err := base64.StdEncoding.DecodeString(r.SecretData)
	if err != nil {
		return nil, fmt.Errorf("entrust: read key %q: secret_data is not base64", name)
	}
	return v, nil
}

// Delete removes the secret named name; a missing key is an error matching
// keystore.ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return fmt.Errorf("entrust: delete key %q: %w", name, err)
	}
	resp, err := s.call(ctx, "DeleteSecret", map[string]string{"box_id": s.box, "secret_id": name}, false)
	if err != nil {
		return fmt.Errorf("entrust: delete key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("entrust: delete key %q: %w", name, keystore.ErrNotFound)
	}
	return fmt.Errorf("entrust: delete key %q: %w", name, statusErr(resp))
}

// nextToken is the continuation token of ListSecretIds.
type nextToken struct {
	BoxID   string `json:"box_id"`
	NextCtx string `json:"next_ctx"`
}

// List pages through ListSecretIds (256 per request), which lists a box's
// secrets by name: the first request continues after a name just before
// the first one that can match (whether KeyControl's continuation is
// inclusive or exclusive, nothing that matches is skipped), later ones
// with the token KeyControl returned. Expired secrets and empty names are
// skipped (upstream returned empty names).
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if n <= 0 {
		n = keystore.ListPageSize
	}
	from := max(prefix, continueAt)
	token := ""
	if before := dropLastRune(from); before != "" {
		b, _ := json.Marshal(nextToken{BoxID: s.box, NextCtx: before})
		token = base64.StdEncoding.EncodeToString(b)
	}
	var (
		names []string
		last  string
	)
	for {
		body := map[string]any{"box_id": s.box, "max_items": pageSize}
		if token != "" {
			body["next_token"] = token
		}
		resp, err := s.call(ctx, "ListSecretIds", body, true)
		if err != nil {
			return nil, "", fmt.Errorf("entrust: list keys: %w", err)
		}
		if resp.Status != http.StatusOK {
			return nil, "", fmt.Errorf("entrust: list keys: %w", statusErr(resp))
		}
		var page struct {
			Secrets []struct {
				Name    string `json:"name"`
				Expired bool   `json:"expired"`
			} `json:"secrets"`
			NextToken string `json:"next_token"`
		}
		if err := resp.Decode(&page); err != nil {
			return nil, "", fmt.Errorf("entrust: list keys: %w", err)
		}
		for _, sec := range page.Secrets {
			if sec.Expired || sec.Name == "" || sec.Name < from || sec.Name <= last {
				continue
			}
			if !strings.HasPrefix(sec.Name, prefix) {
				return cut(names, n) // names are sorted: none after has the prefix
			}
			last = sec.Name
			if names = append(names, sec.Name); len(names) > n {
				return cut(names, n)
			}
		}
		if page.NextToken == "" || page.NextToken == token {
			return cut(names, n)
		}
		token = page.NextToken
	}
}

func dropLastRune(s string) string {
	_, size := utf8.DecodeLastRuneInString(s)
	return s[:len(s)-size]
}

func cut(names []string, n int) ([]string, string, error) {
	if len(names) > n {
		return names[:n:n], names[n], nil
	}
	return names, "", nil
}

// statusErr returns the error for a KeyControl error answer {"error"}.
func statusErr(resp *rest.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = resp.Decode(&e)
	return rest.NewStatusError(resp, e.Error)
}
