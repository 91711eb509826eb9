// Package azure implements a key store on Azure Key Vault secrets (spec
// config.md §9.7), using the azsecrets and azidentity SDKs.
//
// The stored layout is upstream's: the key named <name> is the secret
// named <name> (Key Vault allows only [0-9A-Za-z-]; other names are
// rejected, never mapped), its value is the stored key record verbatim and
// no content type, tags or attributes are set. A secret may have several
// versions; the key is its oldest enabled version, as upstream reads it, so
// a later SetSecret by anyone never changes a key. Keys written by upstream
// KES are therefore served unchanged and keys written here are readable by
// upstream.
//
// Values that are not UTF-8 (upstream never writes one: its records are
// base64 or JSON text) cannot be a Key Vault string as they are; such a
// value is stored base64-encoded with the content type
// "application/octet-stream; encoding=base64" and decoded on read.
//
// The package imports internal/keystore and the Azure SDK, nothing else of
// this module.
package azure

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Store = (*Store)(nil)

// ErrInvalidName is returned (wrapped) for a key name Key Vault cannot
// hold. Such names are rejected, never mapped to another name.
var ErrInvalidName = errors.New("invalid key name: Azure Key Vault allows 1 to 127 characters of 0-9, a-z, A-Z and -")

// maxNameLen is the longest secret name Key Vault takes.
const maxNameLen = 127

// checkName returns ErrInvalidName unless name is 1 to 127 characters of
// 0-9, a-z, A-Z and -. A loop, not a regular expression: compiling
// [0-9A-Za-z-]{1,127} at start took 1,427 allocations in every server,
// whatever store it was configured with.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return ErrInvalidName
	}
	for i := range len(name) {
		switch c := name[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
		default:
			return ErrInvalidName
		}
	}
	return nil
}

// Bounds of the soft-delete handling (spec config.md §9.7).
const (
	createPurgeTries = 25 // purges of a soft-deleted name before a create
	createSetTries   = 7  // SetSecret attempts of a create
	deletePurgeTries = 10 // purges after a delete
)

// Store is a key store on an Azure Key Vault. It is safe for concurrent
// use. Create it with [Connect] and release it with [Store.Close].
type Store struct {
	endpoint string
	client   *azsecrets.Client
	probe    *http.Client // for Status
	ownProbe bool         // probe was made here: Close releases it
	logger   *slog.Logger

	// createMu serialises Create of the same name inside this process:
	// Key Vault has no create-if-absent, so read-then-set alone would let
	// two concurrent creates both succeed.
	createMu [64]sync.Mutex

	// wait returns the pause before retry try (from 0) of a purge or
	// set; nil means backoff.
	wait func(try int) time.Duration
}

// Connect returns a store for the vault of c. It does not contact the
// vault: tokens are fetched on the first request, after Key Vault's bearer
// challenge names the tenant and resource. logger nil means slog.Default().
func Connect(_ context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	if _, err := c.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	client, err := azsecrets.NewClient(c.Endpoint, cred, &azsecrets.ClientOptions{ClientOptions: c.clientOptions()})
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	s := &Store{endpoint: c.Endpoint, client: client, probe: c.Transport, logger: logger}
	if s.probe == nil {
		s.ownProbe = true
		s.probe = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	return s, nil
}

// Close releases the idle connections of the status probe. The store
// starts no goroutines. It is safe to call more than once.
func (s *Store) Close() error {
	if s.ownProbe {
		s.probe.CloseIdleConnections()
	}
	return nil
}

// Status sends a plain GET to the vault endpoint, as upstream does: any
// answer below 500 (Key Vault answers 401 or 404 without a token) means the
// vault is reachable. A network failure or a 5xx answer is reported as a
// [*keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint, nil)
	if err != nil {
		return keystore.State{}, fmt.Errorf("azure: status: %w", err)
	}
	start := time.Now()
	resp, err := s.probe.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return keystore.State{}, fmt.Errorf("azure: status: %w", ctx.Err())
		}
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("azure: status: %w", err)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	latency := time.Since(start)
	if resp.StatusCode >= 500 {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("azure: status: %s", resp.Status)}
	}
	return keystore.State{Latency: latency}, nil
}

// Create stores value as the secret name unless the secret exists, in
// which case the error matches keystore.ErrExists. A soft-deleted secret
// of that name is purged first.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("azure: create key %q: %w", name, err)
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	mu := &s.createMu[h.Sum32()%uint32(len(s.createMu))]
	mu.Lock()
	defer mu.Unlock()

	_, err := s.client.GetSecret(ctx, name, "", nil)
	switch e := vaultErr(err); {
	case err == nil, e != nil && e.InnerCode == "SecretDisabled":
		return fmt.Errorf("azure: create key %q: %w", name, keystore.ErrExists)
	case e != nil && e.StatusCode == http.StatusNotFound:
	default:
		return s.fail(ctx, "create", name, err)
	}
	version, err := s.set(ctx, name, value)
	if err != nil {
		return s.fail(ctx, "create", name, err)
	}
	// Another process may have set the same name meanwhile: the oldest
	// version is the key, so if another version is older, ours lost (it
	// stays as a newer version nobody reads).
	lost, err := s.olderVersion(ctx, name, version)
	if err != nil {
		s.logger.WarnContext(ctx, "azure: cannot check for a concurrent create", "key", name, "err", err)
		return nil
	}
	if lost {
		return fmt.Errorf("azure: create key %q: %w", name, keystore.ErrExists)
	}
	return nil
}

// olderVersion reports whether the secret name has a version created
// strictly before version. Key Vault's creation times have a resolution of
// one second, so two creates in different processes within the same second
// cannot be ordered: both succeed, as any two concurrent creates do
// upstream, and readers serve the one with the smaller version ID.
func (s *Store) olderVersion(ctx context.Context, name, version string) (bool, error) {
	page, err := s.client.NewListSecretPropertiesVersionsPager(name, nil).NextPage(ctx)
	if err != nil {
		return false, err
	}
	var ours *time.Time
	for _, v := range page.Value {
		if v != nil && v.ID != nil && v.ID.Version() == version && v.Attributes != nil {
			ours = v.Attributes.Created
		}
	}
	if ours == nil {
		return false, errors.New("own version not listed")
	}
	for _, v := range page.Value {
		if v != nil && v.ID != nil && v.ID.Version() != version && v.Attributes != nil &&
			v.Attributes.Created != nil && v.Attributes.Created.Before(*ours) {
			return true, nil
		}
	}
	return false, nil
}

// set calls SetSecret and, while the name is soft-deleted, purges it and
// tries again. It returns the version created.
func (s *Store) set(ctx context.Context, name string, value []byte) (string, error) {
	params := encodeValue(value)
	for try := 0; ; try++ {
		resp, err := s.client.SetSecret(ctx, name, params, nil)
		if err == nil {
			if resp.ID == nil {
				return "", errors.New("set secret: answer without id")
			}
			return resp.ID.Version(), nil
		}
		e := vaultErr(err)
		if e == nil || e.StatusCode != http.StatusConflict || try+1 >= createSetTries {
			return "", err
		}
		switch e.InnerCode {
		case "ObjectIsDeletedButRecoverable", "ObjectIsBeingDeleted":
			s.logger.DebugContext(ctx, "azure: purging soft-deleted secret before create", "key", name)
			if err := s.purge(ctx, name, createPurgeTries, false); err != nil {
				return "", err
			}
		default:
			return "", err
		}
	}
}

// purge calls PurgeDeletedSecret up to tries times, waiting while Key Vault
// is still deleting the secret. A deleted secret not found is success,
// unless mustExist (it was deleted a moment ago and is not listed yet).
func (s *Store) purge(ctx context.Context, name string, tries int, mustExist bool) error {
	for try := 0; ; try++ {
		_, err := s.client.PurgeDeletedSecret(ctx, name, nil)
		e := vaultErr(err)
		switch {
		case err == nil:
			return nil
		case e != nil && e.StatusCode == http.StatusNotFound && !mustExist:
			return nil
		case e != nil && (e.StatusCode == http.StatusNotFound ||
			e.StatusCode == http.StatusConflict && e.InnerCode == "ObjectIsBeingDeleted"):
			if try+1 >= tries {
				return fmt.Errorf("purge: still being deleted after %d tries: %w", tries, err)
			}
		default:
			return fmt.Errorf("purge: %w", err)
		}
		if err := s.pause(ctx, try); err != nil {
			return err
		}
	}
}

// pause waits before retry try, or until ctx ends.
func (s *Store) pause(ctx context.Context, try int) error {
	d := backoff(try)
	if s.wait != nil {
		d = s.wait(try)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff is 200 ms doubling per try up to 1 s, with ±20% jitter.
func backoff(try int) time.Duration {
	d := min(200*time.Millisecond<<min(try, 3), time.Second)
	return d*4/5 + time.Duration(randN(int64(d*2/5)))
}

// Delete deletes the secret name and purges it, so that the name can be
// created again at once (that needs the purge permission). Deleting a
// missing secret succeeds, as upstream.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("azure: delete key %q: %w", name, err)
	}
	_, err := s.client.DeleteSecret(ctx, name, nil)
	deleted := err == nil
	if e := vaultErr(err); err != nil && (e == nil || e.StatusCode != http.StatusNotFound) {
		return s.fail(ctx, "delete", name, err)
	}
	if err := s.purge(ctx, name, deletePurgeTries, deleted); err != nil {
		return s.fail(ctx, "delete", name, err)
	}
	return nil
}
