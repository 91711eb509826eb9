// Package aws implements a key store on AWS Secrets Manager (spec config.md
// §9.6) with the AWS SDK for Go v2.
//
// The stored layout is upstream's: one secret per key, named after the key,
// whose SecretString is the stored record, encrypted with the configured
// KMS key (KmsKeyId) or the account's default key. No tags, description or
// other fields are set. Secrets written by upstream KES are therefore served
// unchanged and secrets written here are readable by upstream.
//
// The package imports internal/keystore and the AWS SDK, nothing else of
// this module.
package aws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Store = (*Store)(nil)

// Limits of Secrets Manager.
const (
	// MaxValueSize is the largest SecretString (or SecretBinary) AWS
	// accepts, 64 KiB.
	MaxValueSize = 64 << 10

	// maxNameLen is the longest secret name AWS accepts.
	maxNameLen = 512

	// listPageSize is the largest page ListSecrets returns.
	listPageSize = 100
)

// ErrEmptyValue is returned by Create for an empty value, which Secrets
// Manager cannot hold (a secret without a value has no version to read).
var ErrEmptyValue = errors.New("empty value")

// Store is a key store on AWS Secrets Manager. It is safe for concurrent
// use. Create it with [Connect] and release it with [Store.Close]. It starts
// no goroutines.
type Store struct {
	cfg       *settings
	client    *secretsmanager.Client
	http      awssdk.HTTPClient // the SDK's HTTP client, also for Status
	transport *http.Transport   // its transport; nil if the SDK chose another client
	logger    *slog.Logger
}

// Connect creates a Secrets Manager client for c and probes the endpoint
// (spec: connect fails if it is unreachable). logger nil means
// slog.Default().
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	cfg, err := c.settings()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	// The SDK's own client (it adds AWS_CA_BUNDLE to it), with TLS 1.2 or
	// newer and no redirects followed.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.MinVersion = max(tr.TLSClientConfig.MinVersion, tls.VersionTLS12)
	})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithHTTPClient(httpClient),
		// Upstream read credentials from the environment, the shared
		// credentials file and the ECS/EC2 roles, but not the shared
		// config file: an empty list turns that file off.
		awsconfig.WithSharedConfigFiles([]string{}),
		awsconfig.WithRetryer(func() awssdk.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
			})
		}),
	}
	if cfg.static() {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws: load sdk config: %w", err)
	}
	// The SDK logs a few messages of its own (never request or response
	// bodies, as no ClientLogMode is set), mostly about connection reuse;
	// they go to the store's logger at debug level.
	awsCfg.Logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		logger.Debug("aws: sdk", "message", fmt.Sprintf(format, v...), "sdk_level", string(c))
	})
	// One client of our own on the SDK's transport (with AWS_CA_BUNDLE
	// and TLS 1.2+ applied), so that the store and the SDK share one
	// connection pool, which Close can release.
	var transport *http.Transport
	if b, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		transport = b.GetTransport()
		awsCfg.HTTPClient = &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Store{
		cfg: cfg,
		client: secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
			o.BaseEndpoint = awssdk.String(cfg.endpoint)
		}),
		http:      awsCfg.HTTPClient,
		transport: transport,
		logger:    logger,
	}
	if _, err := s.Status(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("aws: connect: %w", err)
	}
	logger.DebugContext(ctx, "aws: connected", "endpoint", cfg.endpoint, "region", cfg.Region)
	return s, nil
}

// Close releases idle connections. The store starts no goroutines, so
// there is nothing to wait for. It is safe to call more than once.
func (s *Store) Close() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// String returns the banner line of the store's configuration.
func (s *Store) String() string { return s.cfg.String() }

// Status sends a plain GET to the endpoint, as upstream: any HTTP answer
// means reachable. A network failure is a [*keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.endpoint, nil)
	if err != nil {
		return keystore.State{}, fmt.Errorf("aws: status: %w", err)
	}
	start := time.Now()
	resp, err := s.http.Do(req)
	latency := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return keystore.State{}, fmt.Errorf("aws: status: %w", ctx.Err())
		}
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("aws: status: %w", err)}
	}
	// Drain a little so the connection can be reused, then close.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return keystore.State{Latency: latency}, nil
}

// Create creates the secret name with value as its SecretString (or, for a
// value that is not UTF-8, which a SecretString cannot carry, as its
// SecretBinary), encrypted with the configured KMS key. If the secret
// exists, the error matches keystore.ErrExists.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("aws: create key %q: %w", name, err)
	}
	switch {
	case len(value) == 0:
		return fmt.Errorf("aws: create key %q: %w", name, ErrEmptyValue)
	case len(value) > MaxValueSize:
		return fmt.Errorf("aws: create key %q: value of %d bytes exceeds the limit of %d bytes", name, len(value), MaxValueSize)
	}
	in := &secretsmanager.CreateSecretInput{Name: awssdk.String(name)}
	if utf8.Valid(value) {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = value
	}
	if s.cfg.KMSKey != "" {
		in.KmsKeyId = awssdk.String(s.cfg.KMSKey)
	}
	if _, err := s.client.CreateSecret(ctx, in); err != nil {
		return fmt.Errorf("aws: create key %q: %w", name, classify(ctx, err))
	}
	return nil
}

// Get returns the SecretString of the secret name, or its SecretBinary if
// it has no string. If the secret does not exist, the error matches
// keystore.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("aws: read key %q: %w", name, err)
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(name)})
	if err != nil {
		return nil, fmt.Errorf("aws: read key %q: %w", name, classify(ctx, err))
	}
	switch {
	case out.SecretString != nil:
		return []byte(*out.SecretString), nil
	case out.SecretBinary != nil:
		return out.SecretBinary, nil
	}
	return nil, fmt.Errorf("aws: read key %q: secret has no value", name)
}

// Delete deletes the secret name at once (ForceDeleteWithoutRecovery), as
// upstream. If it does not exist, the error matches keystore.ErrNotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("aws: delete key %q: %w", name, err)
	}
	_, err := s.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:                   awssdk.String(name),
		ForceDeleteWithoutRecovery: awssdk.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("aws: delete key %q: %w", name, classify(ctx, err))
	}
	return nil
}

// List pages through all secrets (ListSecrets, 100 per page) and answers
// from their names with [keystore.Page]. Secrets scheduled for deletion are
// not listed.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	var names []string
	p := secretsmanager.NewListSecretsPaginator(s.client, &secretsmanager.ListSecretsInput{
		MaxResults: awssdk.Int32(listPageSize),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("aws: list keys: %w", classify(ctx, err))
		}
		for _, e := range out.SecretList {
			if e.Name != nil {
				names = append(names, *e.Name)
			}
		}
	}
	page, next := keystore.Page(names, prefix, continueAt, n)
	return page, next, nil
}

// classify maps an SDK error to the store's errors: not found and exists to
// the keystore sentinels, a failure to reach AWS to an unreachable error,
// the caller's cancellation to its context error. Anything else (including
// DecryptionFailure and 5xx or throttling after the last retry) stays a
// store error. The SDK's errors carry AWS's code, message and request id,
// never a request body, so no secret value reaches them.
func classify(ctx context.Context, err error) error {
	var (
		notFound *types.ResourceNotFoundException
		exists   *types.ResourceExistsException
		send     *smithyhttp.RequestSendError
	)
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%w (%w)", keystore.ErrNotFound, err)
	case errors.As(err, &exists):
		return fmt.Errorf("%w (%w)", keystore.ErrExists, err)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &send):
		return &keystore.UnreachableError{Err: err}
	}
	return err
}

// checkName rejects names Secrets Manager cannot hold as given: it allows
// 1 to 512 bytes of [A-Za-z0-9/_+=.@-]. Anything else (a ':' would make
// the name read as an ARN) is refused rather than mapped.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("invalid name: want 1 to %d bytes", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/' || c == '_' || c == '+' || c == '=' || c == '.' || c == '@' || c == '-':
		default:
			return fmt.Errorf("invalid name: byte %q not allowed by secrets manager", c)
		}
	}
	return nil
}
