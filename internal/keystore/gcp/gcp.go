// Package gcp implements a key store on Google Cloud Secret Manager (spec
// config.md §9.5) with the official client, cloud.google.com/go/secretmanager.
//
// The layout is upstream's: key <name> is the secret
// projects/<project>/secrets/<name> with automatic replication, and its
// stored record is the payload of the secret's version 1. Keys written by
// upstream KES are therefore served unchanged and keys written here are
// readable by upstream.
//
// The package imports internal/keystore and the Google Cloud client
// libraries, nothing else of this module.
package gcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Store = (*Store)(nil)

const (
	// maxNameLen and the characters of validName are Secret Manager's
	// rules for a secret ID.
	maxNameLen = 255

	// listPageSize is the largest page ListSecrets returns.
	listPageSize = 25000

	// callTimeout bounds one RPC attempt when the caller's context has no
	// earlier deadline (the SDK's default).
	callTimeout = 60 * time.Second

	// Retries of UNAVAILABLE and RESOURCE_EXHAUSTED: at most maxAttempts
	// calls, waiting a random time up to a bound that doubles from
	// minBackoff to maxBackoff, and never past the caller's deadline.
	maxAttempts = 8
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store is a key store on Secret Manager. It is safe for concurrent use.
// Create it with [Connect] and release it with [Store.Close].
type Store struct {
	client   *secretmanager.Client
	probe    *http.Client
	probeURL string
	parent   string // projects/<project>
	logger   *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// Connect creates a Secret Manager client for c and probes the endpoint as
// upstream does. Credentials are the service account of c or, if none is
// set, Application Default Credentials. logger nil means slog.Default().
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	// The SDK's own logging would print request and response messages,
	// payloads included, when its environment variable asks for it.
	opts := []option.ClientOption{
		option.WithLogger(slog.New(slog.DiscardHandler)),
		option.WithTelemetryDisabled(),
	}
	if c.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	if len(c.Scopes) > 0 {
		opts = append(opts, option.WithScopes(c.Scopes...))
	}
	if !c.Credentials.isZero() {
		key, err := c.serviceAccountJSON()
		if err != nil {
			return nil, fmt.Errorf("gcp: credentials: %w", err)
		}
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.testOnlyRootCAs}
	if c.testOnlyRootCAs != nil {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig))))
	}
	// The client keeps what it gets here (token refresh); it must outlive
	// a Connect deadline.
	client, err := secretmanager.NewClient(context.WithoutCancel(ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: connect: %w", err)
	}
	// Retries are done by the store (see retry) for every call alike.
	timeout := []gax.CallOption{gax.WithTimeout(callTimeout)}
	client.CallOptions.CreateSecret = timeout
	client.CallOptions.AddSecretVersion = timeout
	client.CallOptions.AccessSecretVersion = timeout
	client.CallOptions.DeleteSecret = timeout
	client.CallOptions.ListSecrets = timeout

	s := &Store{
		client: client,
		probe: &http.Client{Transport: &http.Transport{
			Proxy:             http.ProxyFromEnvironment,
			TLSClientConfig:   tlsConfig,
			ForceAttemptHTTP2: true,
		}},
		probeURL: c.probeURL(),
		parent:   "projects/" + c.ProjectID,
		logger:   logger,
	}
	if _, err := s.Status(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("gcp: connect: %w", err)
	}
	return s, nil
}

// Close closes the client's connections. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.probe.CloseIdleConnections()
		s.closeErr = s.client.Close()
	})
	return s.closeErr
}

// Status sends a plain HTTPS GET to the endpoint, as upstream: any HTTP
// answer means reachable, a transport failure is a
// [*keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.probeURL, nil)
	if err != nil {
		return keystore.State{}, fmt.Errorf("gcp: status: %w", err)
	}
	start := time.Now()
	resp, err := s.probe.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return keystore.State{}, fmt.Errorf("gcp: status: %w", ctx.Err())
		}
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("gcp: status: %w", err)}
	}
	latency := time.Since(start)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return keystore.State{Latency: latency}, nil
}

// Create stores value as version 1 of a new secret name. If the name is
// taken the error matches keystore.ErrExists.
//
// A secret without a version 1 (left by a create that failed or crashed
// between creating the secret and adding its version, here or at upstream
// KES) holds no key: no create of it ever succeeded. Create completes such a
// secret with value instead of reporting the name as taken, so the name is
// never stuck. Of several creates that race for one name, only the one
// whose value became version 1 succeeds.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gcp: create key %q: %w", name, err)
	}
	if err := s.create(ctx, name, value); err != nil {
		return fmt.Errorf("gcp: create key %q: %w", name, err)
	}
	return nil
}

func (s *Store) create(ctx context.Context, name string, value []byte) error {
	err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
			Parent:   s.parent,
			SecretId: name,
			Secret: &secretmanagerpb.Secret{
				Replication: &secretmanagerpb.Replication{
					Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
				},
			},
		})
		return err
	})
	completing := false
	switch {
	case status.Code(err) == codes.AlreadyExists:
		// Also the answer to a retry of our own CreateSecret whose
		// first answer was lost.
		_, err := s.access(ctx, name)
		if err == nil || status.Code(err) == codes.FailedPrecondition {
			return keystore.ErrExists // a key, maybe disabled or destroyed
		}
		if !errors.Is(err, keystore.ErrNotFound) {
			return err
		}
		completing = true
	case err != nil:
		return classify(ctx, err)
	}

	sum := int64(crc32.Checksum(value, castagnoli))
	var version *secretmanagerpb.SecretVersion
	err = s.retry(ctx, func(ctx context.Context) (err error) {
		version, err = s.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
			Parent:  s.secretName(name),
			Payload: &secretmanagerpb.SecretPayload{Data: value, DataCrc32C: &sum},
		})
		return err
	})
	if err != nil {
		// The secret stays without a version 1: a later Create of the
		// name completes it. Deleting it here could delete a key that
		// a concurrent Create has just completed.
		if status.Code(err) == codes.NotFound {
			return fmt.Errorf("secret deleted while being created: %w", err)
		}
		return classify(ctx, err)
	}
	if !strings.HasSuffix(version.GetName(), "/versions/1") {
		// Another create added version 1 first, or a retried call of
		// ours whose first answer was lost did. Only the value of
		// version 1 is ever read.
		stored, err := s.access(ctx, name)
		if err != nil {
			return err
		}
		if !bytes.Equal(stored, value) {
			return keystore.ErrExists
		}
	}
	if completing {
		s.logger.InfoContext(ctx, "gcp: completed a secret that had no version 1", "key", name)
	}
	return nil
}

// Get returns the payload of version 1 of secret name. A missing secret or
// a secret without version 1 is keystore.ErrNotFound; a disabled or
// destroyed version 1 is another error (the key exists but cannot be read).
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("gcp: read key %q: %w", name, err)
	}
	v, err := s.access(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("gcp: read key %q: %w", name, err)
	}
	return v, nil
}

func (s *Store) access(ctx context.Context, name string) ([]byte, error) {
	var resp *secretmanagerpb.AccessSecretVersionResponse
	err := s.retry(ctx, func(ctx context.Context) (err error) {
		resp, err = s.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
			Name: s.secretName(name) + "/versions/1",
		})
		return err
	})
	switch {
	case status.Code(err) == codes.NotFound:
		return nil, keystore.ErrNotFound
	case err != nil:
		return nil, classify(ctx, err)
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && *sum != int64(crc32.Checksum(data, castagnoli)) {
		return nil, errors.New("payload checksum mismatch")
	}
	return data, nil
}

// Delete removes secret name with all its versions. Deleting a missing key
// returns an error matching keystore.ErrNotFound, as upstream.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gcp: delete key %q: %w", name, err)
	}
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.client.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.secretName(name)})
	})
	switch {
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("gcp: delete key %q: %w", name, keystore.ErrNotFound)
	case err != nil:
		return fmt.Errorf("gcp: delete key %q: %w", name, classify(ctx, err))
	}
	return nil
}

// List returns up to n names starting with prefix, sorted, from continueAt
// on. It reads every page of the project's secrets (Secret Manager has no
// prefix listing) and pages the sorted names itself. Secrets whose version
// 1 was never added are listed, as upstream.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	var names []string
	token := ""
	for {
		var page []*secretmanagerpb.Secret
		var next string
		err := s.retry(ctx, func(ctx context.Context) (err error) {
			it := s.client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: s.parent})
			page = page[:0]
			next, err = iterator.NewPager(it, listPageSize, token).NextPage(&page)
			return err
		})
		if err != nil {
			return nil, "", fmt.Errorf("gcp: list keys: %w", classify(ctx, err))
		}
		for _, sec := range page {
			if i := strings.LastIndex(sec.GetName(), "/secrets/"); i >= 0 {
				names = append(names, sec.GetName()[i+len("/secrets/"):])
			}
		}
		if next == "" {
			break
		}
		if next == token {
			return nil, "", errors.New("gcp: list keys: the service repeated a page token")
		}
		token = next
	}
	names, next := keystore.Page(names, prefix, continueAt, n)
	return names, next, nil
}

func (s *Store) secretName(name string) string { return s.parent + "/secrets/" + name }

// retry calls fn until it succeeds, fails with an error other than
// UNAVAILABLE or RESOURCE_EXHAUSTED, maxAttempts calls were made, or the
// next wait would end past ctx's deadline. It returns fn's last error.
func (s *Store) retry(ctx context.Context, fn func(context.Context) error) error {
	bound := minBackoff
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if code := status.Code(err); err == nil || attempt == maxAttempts || (code != codes.Unavailable && code != codes.ResourceExhausted) {
			return err
		}
		wait := rand.N(bound) + 1
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		bound = min(2*bound, maxBackoff)
	}
}

// classify turns an RPC error into the store's terms: UNAVAILABLE (the
// service or the network is down) is a [*keystore.UnreachableError]; an
// error after the caller's context ended is that context's error, and so
// is DEADLINE_EXCEEDED (the service may answer it a moment before the
// caller's own timer fires).
func classify(ctx context.Context, err error) error {
	switch {
	case status.Code(err) == codes.Unavailable:
		return &keystore.UnreachableError{Err: err}
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	case status.Code(err) == codes.DeadlineExceeded:
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// checkName accepts Secret Manager's secret IDs: 1 to 255 of
// [A-Za-z0-9_-].
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return errInvalidName
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return errInvalidName
		}
	}
	return nil
}

var errInvalidName = errors.New("invalid key name: a GCP secret ID is 1 to 255 of A-Z, a-z, 0-9, - and _")
