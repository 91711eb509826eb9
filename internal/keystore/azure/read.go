package azure

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/openkes/kes/internal/keystore"
)

// binaryContentType marks a value stored base64-encoded because it is not
// UTF-8. Upstream never writes one.
const binaryContentType = "application/octet-stream; encoding=base64"

// Errors of a key whose oldest version cannot be served.
var (
	// ErrTooManyVersions: the secret's versions do not fit in one listing
	// page, so the oldest is unknown (upstream: TooManyObjectVersions).
	ErrTooManyVersions = errors.New("too many object versions")

	// ErrDisabled: the oldest version is disabled.
	ErrDisabled = errors.New("secret version is disabled")

	// ErrNotYetValid: the oldest version's not-before time is in the
	// future.
	ErrNotYetValid = errors.New("secret version is not valid yet")

	// ErrExpired: the oldest version's expiry time has passed.
	ErrExpired = errors.New("secret version has expired")
)

func encodeValue(v []byte) azsecrets.SetSecretParameters {
	if utf8.Valid(v) {
		return azsecrets.SetSecretParameters{Value: to.Ptr(string(v))}
	}
	return azsecrets.SetSecretParameters{
		Value:       to.Ptr(base64.StdEncoding.EncodeToString(v)),
		ContentType: to.Ptr(binaryContentType),
	}
}

func decodeValue(value, contentType *string) ([]byte, error) {
	if value == nil {
		return nil, errors.New("secret without value")
	}
	if contentType != nil && *contentType == binaryContentType {
		v, err := base64.StdEncoding.DecodeString(*value)
		if err != nil {
			return nil, fmt.Errorf("binary secret: %w", err)
		}
		return v, nil
	}
	return []byte(*value), nil
}

// Get returns the value of the oldest version of the secret name, as
// upstream reads it. A disabled, not yet valid or expired oldest version is
// an error (ErrDisabled, ErrNotYetValid, ErrExpired), not a missing key.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("azure: get key %q: %w", name, err)
	}
	v, err := s.oldest(ctx, name)
	if err != nil {
		return nil, s.fail(ctx, "get", name, err)
	}
	now := time.Now()
	switch a := v.Attributes; {
	case a != nil && a.Enabled != nil && !*a.Enabled:
		return nil, fmt.Errorf("azure: get key %q: %w", name, ErrDisabled)
	case a != nil && a.NotBefore != nil && now.Before(*a.NotBefore):
		return nil, fmt.Errorf("azure: get key %q: %w", name, ErrNotYetValid)
	case a != nil && a.Expires != nil && !now.Before(*a.Expires):
		return nil, fmt.Errorf("azure: get key %q: %w", name, ErrExpired)
	}
	resp, err := s.client.GetSecret(ctx, name, v.ID.Version(), nil)
	if err != nil {
		return nil, s.fail(ctx, "get", name, err)
	}
	value, err := decodeValue(resp.Value, resp.ContentType)
	if err != nil {
		return nil, fmt.Errorf("azure: get key %q: %w", name, err)
	}
	return value, nil
}

// oldest returns the oldest version of the secret name from the first
// page of its versions: the earliest created, ties broken by the smaller
// version ID, so that every reader picks the same one. No version is
// keystore.ErrNotFound; more than one page is ErrTooManyVersions.
func (s *Store) oldest(ctx context.Context, name string) (*azsecrets.SecretProperties, error) {
	pager := s.client.NewListSecretPropertiesVersionsPager(name, nil)
	page, err := pager.NextPage(ctx)
	if err != nil {
		return nil, err
	}
	if page.NextLink != nil && *page.NextLink != "" {
		return nil, ErrTooManyVersions
	}
	var oldest *azsecrets.SecretProperties
	for _, v := range page.Value {
		if v == nil || v.ID == nil || v.Attributes == nil || v.Attributes.Created == nil {
			continue
		}
		if oldest == nil || older(v, oldest) {
			oldest = v
		}
	}
	if oldest == nil {
		return nil, keystore.ErrNotFound
	}
	return oldest, nil
}

func older(a, b *azsecrets.SecretProperties) bool {
	ta, tb := *a.Attributes.Created, *b.Attributes.Created
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.ID.Version() < b.ID.Version()
}

// List returns the names of all secrets of the vault (every page of the
// listing) that match prefix and continueAt, sorted, at most n.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	var names []string
	pager := s.client.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, "", s.fail(ctx, "list", prefix, err)
		}
		for _, v := range page.Value {
			if v != nil && v.ID != nil {
				names = append(names, v.ID.Name())
			}
		}
	}
	names, next := keystore.Page(names, prefix, continueAt, n)
	return names, next, nil
}

// notFound reports whether err is Key Vault's 404 or an empty listing.
func notFound(err error) bool {
	if errors.Is(err, keystore.ErrNotFound) {
		return true
	}
	e := vaultErr(err)
	return e != nil && e.StatusCode == http.StatusNotFound
}
