// Package vault implements a key store on the K/V secrets engine of
// HashiCorp Vault or OpenBao (spec config.md §9.2), using the Vault API
// client library.
//
// The stored layout is upstream's: the secret at <engine>/<prefix>/<name>
// (K/V v2: its version 1) has one data field named after the key whose
// value is the stored record, optionally wrapped by a transit key. Keys
// written by upstream KES are therefore served unchanged and keys written
// here are readable by upstream.
//
// The package imports internal/keystore, the SDK errors and the Vault API
// client, nothing else of this module.
package vault

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Store = (*Store)(nil)

// ErrSealed is returned by every operation while the background status
// check sees Vault sealed.
var ErrSealed = errors.New("vault: key store is sealed")

// maxNameLen bounds key names; Vault paths are bounded by its request size.
const maxNameLen = 255

// Store is a key store on a Vault K/V engine. It is safe for concurrent use.
// Create it with [Connect] and release it with [Store.Close].
//
// Store implements [keystore.Replacer] on K/V v2 with check-and-set (see
// [Store.Replace]); on K/V v1, which has none, Replace refuses.
//
// On a Vault cluster, a call that finds no active node while the store's
// own Vault node is up and unsealed waits for the cluster to elect one,
// within the call's context and for at most 15s, instead of failing (see
// leader.go); a call that finds its own node down fails at once.
type Store struct {
	cfg    *settings
	host   string      // host:port of the Vault node the store talks to
	base   *api.Client // no token, no namespace
	health *api.Client // base without retries, for sys/health

	mu      sync.Mutex
	tok     *token
	kv      *api.Client   // base + tok + namespace; nil without a token
	changed chan struct{} // closed and replaced whenever tok changes
	lastErr error         // last login/renewal failure
	sealed  bool

	// createMu serialises Create of the same name inside this process:
	// K/V v1 has no check-and-set, so read-then-write alone would let
	// concurrent creates both succeed (across processes it still can, as
	// upstream).
	createMu [64]sync.Mutex

	// electing is set by the first call that waits for an election and
	// cleared by the first call that waited and then succeeded, so that
	// an election logs two lines, not two per call.
	electing atomic.Bool

	kick   chan struct{} // asks the token goroutine to check the token now
	unseal chan struct{} // tells the token goroutine that Vault is unsealed
	stats  stats

	stop      chan struct{} // closed by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Connect creates a client for the Vault server of cfg, logs in and starts
// the background token renewal and seal check. Close releases them.
func Connect(ctx context.Context, cfg *Config) (*Store, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	base, err := newClient(s)
	if err != nil {
		return nil, err
	}
	health, err := base.Clone()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	health.SetMaxRetries(0)
	endpoint, err := url.Parse(base.Address())
	if err != nil {
		return nil, fmt.Errorf("vault: invalid endpoint: %w", err)
	}
	st := &Store{
		cfg:     s,
		host:    endpoint.Host,
		base:    base,
		health:  health,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		unseal:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	tok, err := st.login(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.setToken(tok); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.wg.Add(1)
	go st.renewLoop(bg)
	if s.StatusPing > 0 {
		st.wg.Add(1)
		go st.pingLoop(bg)
	}
	return st, nil
}

func newClient(s *settings) (*api.Client, error) {
	conf := api.DefaultConfig()
	if conf.Error != nil {
		return nil, fmt.Errorf("vault: %w", conf.Error)
	}
	conf.Address = s.Endpoint
	if s.TLS.CAPath != "" || s.TLS.CertFile != "" {
		t := &api.TLSConfig{ClientCert: s.TLS.CertFile, ClientKey: s.TLS.KeyFile}
		if s.TLS.CAPath != "" {
			fi, err := os.Stat(s.TLS.CAPath)
			if err != nil {
				return nil, fmt.Errorf("vault: tls ca: %w", err)
			}
			if fi.IsDir() {
				t.CAPath = s.TLS.CAPath
			} else {
				t.CACert = s.TLS.CAPath
			}
		}
		if err := conf.ConfigureTLS(t); err != nil {
			return nil, fmt.Errorf("vault: tls: %w", err)
		}
	}
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// The SDK takes VAULT_TOKEN and VAULT_NAMESPACE from the environment;
	// the store sets both itself.
	c.ClearToken()
	c.ClearNamespace()
	c.SetDisableKeepAlives(true)
	return c, nil
}

// Close stops the background goroutines and waits for them. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// Status probes sys/health (without namespace). A network failure, or a
// sealed or uninitialised Vault, is reported as a [*keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	h, err := s.health.Sys().HealthWithContext(ctx)
	latency := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return keystore.State{}, fmt.Errorf("vault: status: %w", ctx.Err())
		}
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("vault: status: %w", err)}
	}
	s.setSealed(h.Sealed)
	switch {
	case !h.Initialized:
		return keystore.State{}, &keystore.UnreachableError{Err: errors.New("vault: not initialized")}
	case h.Sealed:
		return keystore.State{}, &keystore.UnreachableError{Err: ErrSealed}
	}
	return keystore.State{Latency: latency}, nil
}

// Create stores value under name unless a value exists already, in which
// case the error matches keystore.ErrExists.
//
// A write that is repeated because the first attempt's answer was lost in
// a leader election (see [Store.do]) may find the value that attempt
// stored: Create then succeeds, since the value is this call's own.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("vault: create key %q: %w", name, err)
	}
	mu := &s.createMu[nameHash(name)%uint32(len(s.createMu))]
	mu.Lock()
	defer mu.Unlock()
	stored := encodeValue(value)
	if s.cfg.Transit != nil {
		err := s.do(ctx, func(c *api.Client) (err error) {
			stored, err = s.encrypt(ctx, c, value)
			return err
		})
		if err != nil {
			return fmt.Errorf("vault: create key %q: %w", name, err)
		}
	}
	wrote := false
	err := s.do(ctx, func(c *api.Client) error {
		v, err := s.read(ctx, c, name)
		switch {
		case err == nil && wrote && subtle.ConstantTimeCompare([]byte(v), []byte(stored)) == 1:
			return nil
		case err == nil:
			return keystore.ErrExists
		case !errors.Is(err, keystore.ErrNotFound):
			return err
		}
		data := map[string]any{name: stored}
		if s.cfg.v2 {
			data = map[string]any{"options": map[string]any{"cas": 0}, "data": data}
		}
		wrote = true
		if _, err = c.Logical().WriteWithContext(ctx, s.dataPath(name), data); err != nil {
			if s.cfg.v2 && isCASMismatch(err) {
				return keystore.ErrExists
			}
			return s.classify(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: create key %q: %w", name, err)
	}
	return nil
}

// Get returns the value stored under name, or an error matching
// keystore.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("vault: read key %q: %w", name, err)
	}
	var b []byte
	err := s.do(ctx, func(c *api.Client) error {
		v, err := s.read(ctx, c, name)
		if err != nil {
			return err
		}
		b, err = s.open(ctx, c, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vault: read key %q: %w", name, err)
	}
	return b, nil
}

// read returns the stored string of name (still transit-wrapped). On K/V
// v2 that is version 1 of the secret, as upstream reads it, unless
// Replace wrote the latest version (see readV2).
func (s *Store) read(ctx context.Context, c *api.Client, name string) (string, error) {
	if s.cfg.v2 {
		v, _, err := s.readV2(ctx, c, name)
		return v, err
	}
	sec, err := c.Logical().ReadWithContext(ctx, s.dataPath(name))
	if err != nil {
		return "", s.classify(err)
	}
	if sec == nil || sec.Data == nil {
		return "", keystore.ErrNotFound
	}
	return field(sec.Data, name)
}

// Delete removes name (K/V v2: all its versions). Deleting a missing key
// succeeds, as upstream.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("vault: delete key %q: %w", name, err)
	}
	p := s.dataPath(name)
	if s.cfg.v2 {
		p = s.metadataPath(name)
	}
	err := s.do(ctx, func(c *api.Client) error {
		_, err := c.Logical().DeleteWithContext(ctx, p)
		return s.classify(err)
	})
	if err != nil {
		return fmt.Errorf("vault: delete key %q: %w", name, err)
	}
	return nil
}

// List returns up to n names starting with prefix, sorted, from continueAt
// on. Vault lists all names of the path at once; paging is done here.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	p := path.Join(s.cfg.Engine, s.cfg.Prefix)
	if s.cfg.v2 {
		p = path.Join(s.cfg.Engine, "metadata", s.cfg.Prefix)
	}
	var sec *api.Secret
	err := s.do(ctx, func(c *api.Client) (err error) {
		sec, err = c.Logical().ListWithContext(ctx, p)
		return s.classify(err)
	})
	if err != nil {
		return nil, "", fmt.Errorf("vault: list keys: %w", err)
	}
	var names []string
	if sec != nil && sec.Data != nil {
		keys, _ := sec.Data["keys"].([]any)
		for _, k := range keys {
			name, ok := k.(string)
			// Entries ending in '/' are sub-paths, not keys.
			if !ok || strings.HasSuffix(name, "/") || !strings.HasPrefix(name, prefix) || name < continueAt {
				continue
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if n <= 0 {
		n = keystore.ListPageSize
	}
	if len(names) > n {
		return names[:n:n], names[n], nil
	}
	return names, "", nil
}

func (s *Store) dataPath(name string) string {
	if s.cfg.v2 {
		return path.Join(s.cfg.Engine, "data", s.cfg.Prefix, name)
	}
	return path.Join(s.cfg.Engine, s.cfg.Prefix, name)
}

func (s *Store) metadataPath(name string) string {
	return path.Join(s.cfg.Engine, "metadata", s.cfg.Prefix, name)
}

// checkName rejects names that would change the Vault path they map to.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || name == "." || name == ".." {
		return errInvalidName
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return errInvalidName
		}
	}
	return nil
}

var errInvalidName = errors.New("invalid key name")

// classify marks errors that mean Vault could not be reached and asks the
// token goroutine to check the token when Vault denied a request.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		s.kickRenewer()
	}
	return unreachable(err)
}

func isCASMismatch(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "check-and-set") {
			return true
		}
	}
	return false
}
