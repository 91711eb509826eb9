// Package fortanix implements a key store on Fortanix DSM (SDKMS) through
// its REST API (spec config.md §9.3): every key is an OPAQUE security object
// named after the key, whose value is the stored key record, base64 encoded
// once more as DSM expects. That is upstream KES's layout, so objects upstream
// created are served unchanged and vice versa.
//
// The package imports internal/keystore and its REST helper, nothing else of
// this module.
package fortanix

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

// Config is the fortanix.sdkms keystore (config.md §9.3). It holds a secret
// (APIKey): never log it. A Config must not be changed after Connect.
type Config struct {
	// Endpoint is the SDKMS URL. Required.
	Endpoint string

	// GroupID is the group of new keys. Empty means the app's default group.
	GroupID string

	// APIKey is the app API key. Required.
	APIKey string

	// CAPath is a file or directory of root certificates. Empty means the
	// system roots.
	CAPath string
}

// String describes c without its API key.
func (c *Config) String() string {
	return fmt.Sprintf("Fortanix SDKMS: %s (group %q)", c.Endpoint, c.GroupID)
}

// Errors of [Connect] for an invalid [Config], and of Get for a disabled key.
var (
	ErrNoEndpoint = errors.New("fortanix: no endpoint specified")
	ErrNoAPIKey   = errors.New("fortanix: no API key specified")

	// ErrDisabled is wrapped by the error of Get and Delete for a key whose
	// security object is disabled: its value cannot be exported.
	ErrDisabled = errors.New("key is disabled")
)

const (
	maxNameLen = 4096 // DSM's limit for object names
	pageSize   = 100  // objects per list request, as upstream
)

// Store is a key store on Fortanix DSM. It is safe for concurrent use and
// starts no goroutines. Create it with [Connect].
type Store struct {
	c       *rest.Client
	auth    string // "Basic <API key>"
	groupID string
	logger  *slog.Logger
}

// Connect checks the endpoint's health and the API key (a session is
// opened and closed again, as upstream does at start), then returns the
// store. Every later call authenticates with the API key.
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	switch {
	case c == nil || c.Endpoint == "":
		return nil, ErrNoEndpoint
	case c.APIKey == "":
		return nil, ErrNoAPIKey
	}
	if logger == nil {
		logger = slog.Default()
	}
	conf, err := rest.TLSConfig(c.CAPath)
	if err != nil {
		return nil, fmt.Errorf("fortanix: %w", err)
	}
	client, err := rest.NewClient(c.Endpoint, conf)
	if err != nil {
		return nil, fmt.Errorf("fortanix: %w", err)
	}
	s := &Store{c: client, auth: "Basic " + c.APIKey, groupID: c.GroupID, logger: logger}
	if err := s.login(ctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("fortanix: connect: %w", err)
	}
	return s, nil
}

func (s *Store) login(ctx context.Context) error {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/sys/v1/health", Idempotent: true})
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if resp.Status != http.StatusNoContent && resp.Status != http.StatusOK {
		return fmt.Errorf("health: %w", statusErr(resp))
	}
	resp, err = s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/sys/v1/session/auth", Auth: s.basic, Idempotent: true})
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	if resp.Status != http.StatusOK {
		return fmt.Errorf("authenticate: %w", statusErr(resp))
	}
	var session struct {
		AccessToken string `json:"access_token"`
	}
	if err := resp.Decode(&session); err != nil || session.AccessToken == "" {
		return errors.New("authenticate: no access token in response")
	}
	resp, err = s.c.Do(ctx, &rest.Request{
		Method: http.MethodPost, Path: "/sys/v1/session/terminate", Idempotent: true,
		Auth: func(h http.Header) { h.Set("Authorization", "Bearer "+session.AccessToken) },
	})
	if err != nil {
		return fmt.Errorf("terminate session: %w", err)
	}
	if resp.Status != http.StatusNoContent && resp.Status != http.StatusOK {
		return fmt.Errorf("terminate session: %w", statusErr(resp))
	}
	return nil
}

func (s *Store) basic(h http.Header) { h.Set("Authorization", s.auth) }

// Close releases idle connections. The store has no goroutines.
func (s *Store) Close() error {
	s.c.Close()
	return nil
}

// Status sends GET to the endpoint: any HTTP answer means reachable, as
// upstream.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	if _, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "", Idempotent: true}); err != nil {
		return keystore.State{}, fmt.Errorf("fortanix: status: %w", err)
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Create stores value as a new OPAQUE object named name, or returns an
// error matching keystore.ErrExists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return fmt.Errorf("fortanix: create key %q: %w", name, err)
	}
	body := map[string]any{
		"obj_type": "OPAQUE",
		"name":     name,
		"key_ops":  []string{"EXPORT", "APPMANAGEABLE"},
		"value":    base64.StdEncoding.EncodeToString(value),
		"enabled":  true,
	}
	if s.groupID != "" {
		body["group_id"] = s.groupID
	}
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPut, Path: "/crypto/v1/keys", Body: body, Auth: s.basic})
	if err != nil {
		return fmt.Errorf("fortanix: create key %q: %w", name, err)
	}
	switch {
	case resp.Status == http.StatusCreated || resp.Status == http.StatusOK:
		return nil
	case resp.Status == http.StatusConflict && strings.Contains(strings.ToLower(message(resp)), "already exists"):
		return fmt.Errorf("fortanix: create key %q: %w", name, keystore.ErrExists)
	}
	return fmt.Errorf("fortanix: create key %q: %w", name, statusErr(resp))
}

// Get exports the value of the object named name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	o, err := s.export(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fortanix: read key %q: %w", name, err)
	}
	v, err := base64.StdEncoding.DecodeString(o.Value)
	if err != nil {
		return nil, fmt.Errorf("fortanix: read key %q: value is not base64", name)
	}
	return v, nil
}

type object struct {
	Kid     string `json:"kid"`
	Name    string `json:"name"`
	Value   string `json:"value"`
	Enabled bool   `json:"enabled"`
}

func (s *Store) export(ctx context.Context, name string) (*object, error) {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return nil, err
	}
	resp, err := s.c.Do(ctx, &rest.Request{
		Method: http.MethodPost, Path: "/crypto/v1/keys/export",
		Body: map[string]string{"name": name}, Auth: s.basic, Idempotent: true,
	})
	if err != nil {
		return nil, err
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, keystore.ErrNotFound
	default:
		return nil, statusErr(resp)
	}
	var o object
	if err := resp.Decode(&o); err != nil {
		return nil, err
	}
	if !o.Enabled {
		return nil, ErrDisabled
	}
	return &o, nil
}

// Delete looks up the object's id by exporting it, as upstream, and
// deletes the object. A missing key is an error matching
// keystore.ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	o, err := s.export(ctx, name)
	if err != nil {
		return fmt.Errorf("fortanix: delete key %q: %w", name, err)
	}
	if !validKid(o.Kid) {
		return fmt.Errorf("fortanix: delete key %q: invalid object id in export response", name)
	}
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/crypto/v1/keys/" + o.Kid, Auth: s.basic})
	if err != nil {
		return fmt.Errorf("fortanix: delete key %q: %w", name, err)
	}
	switch resp.Status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("fortanix: delete key %q: %w", name, keystore.ErrNotFound)
	}
	return fmt.Errorf("fortanix: delete key %q: %w", name, statusErr(resp))
}

// validKid accepts DSM object ids (UUIDs), so that an id from a response
// is one path segment.
func validKid(kid string) bool {
	if kid == "" || len(kid) > 64 {
		return false
	}
	for _, c := range kid {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// List pages through DSM's name-sorted listing. The first page starts just
// before the first name that can match (that name without its last
// character), each next one at the last name seen (upstream never advanced
// start); names before the first match or not after the last one seen are
// dropped, so no name is lost or repeated whether DSM's start is inclusive
// or exclusive.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if n <= 0 {
		n = keystore.ListPageSize
	}
	from := max(prefix, continueAt)
	var (
		names  []string
		last   string
		seen   bool
		cursor = dropLastRune(from)
	)
	for {
		q := "sort=name:asc&limit=" + fmt.Sprint(pageSize)
		if cursor != "" {
			q += "&start=" + url.QueryEscape(cursor)
		}
		resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/crypto/v1/keys", Query: q, Auth: s.basic, Idempotent: true})
		if err != nil {
			return nil, "", fmt.Errorf("fortanix: list keys: %w", err)
		}
		if resp.Status != http.StatusOK {
			return nil, "", fmt.Errorf("fortanix: list keys: %w", statusErr(resp))
		}
		var page []struct {
			Name string `json:"name"`
		}
		if err := resp.Decode(&page); err != nil {
			return nil, "", fmt.Errorf("fortanix: list keys: %w", err)
		}
		fresh := 0
		for _, o := range page {
			if seen && o.Name <= last {
				continue
			}
			fresh++
			last, seen = o.Name, true
			if o.Name < from {
				continue
			}
			if !strings.HasPrefix(o.Name, prefix) {
				return page1(names, n) // sorted: no later name has the prefix
			}
			if names = append(names, o.Name); len(names) > n {
				return page1(names, n)
			}
		}
		if len(page) < pageSize || fresh == 0 {
			return page1(names, n)
		}
		cursor = last
	}
}

func dropLastRune(s string) string {
	_, size := utf8.DecodeLastRuneInString(s)
	return s[:len(s)-size]
}

func page1(names []string, n int) ([]string, string, error) {
	if len(names) > n {
		return names[:n:n], names[n], nil
	}
	return names, "", nil
}

// message returns the "message" of a DSM error body.
func message(resp *rest.Response) string {
	var e struct {
		Message string `json:"message"`
	}
	_ = resp.Decode(&e)
	return e.Message
}

func statusErr(resp *rest.Response) error { return rest.NewStatusError(resp, message(resp)) }
