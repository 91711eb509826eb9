package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/openkes/kes/internal/keystore"
)

// Token lifecycle (spec config.md §9.2): a token is renewed after 80% of its
// TTL; if it is not renewable, its TTL is below MinTokenTTL, or renewal
// fails, the store logs in again. A token is never used in the last tenth
// of its TTL (see token.expiry).

const (
	renewTries     = 3
	maxActivation  = 30 * time.Second
	maxJWTFileSize = 64 << 10

	maxExpiryMargin = 5 * time.Second
)

var errClosed = errors.New("vault: key store is closed")

// token is a Vault token and what the store knows about its lifetime.
type token struct {
	id        string
	ttl       time.Duration // current TTL from issued; 0 = never expires
	loginTTL  time.Duration // TTL granted at login, asked for on renewal
	renewable bool
	issued    time.Time // taken before the request that granted ttl
}

func (t *token) usable(now time.Time) bool {
	return t != nil && (t.ttl == 0 || now.Before(t.expiry()))
}

// expiry is when the store stops using the token: a tenth of its TTL (at
// most maxExpiryMargin) before Vault expires it, so that a request sent
// just before does not reach a busy Vault after it (seen in CI: a 403 for
// a request sent with 0.1 s left of a 1 s TTL). Requests in that window
// wait for the renewal or the new login, which start at 80% of the TTL.
func (t *token) expiry() time.Time {
	return t.issued.Add(t.ttl - min(t.ttl/10, maxExpiryMargin))
}

// Stats counts token lifecycle events, and calls repeated while a Vault
// cluster elected its active node, since [Connect].
type Stats struct {
	Logins          int64 // successful logins, the first one included
	Renewals        int64 // successful token renewals
	LoginFailures   int64
	RenewalFailures int64
	// LeaderWaits counts the store calls repeated because the Vault
	// cluster had no reachable active node (see [Store] on clusters).
	LeaderWaits int64
}

type stats struct {
	logins, renewals, loginFailures, renewalFailures atomic.Int64
	leaderWaits                                      atomic.Int64
}

// Stats returns the token lifecycle counters. Logins-1 is the number of
// re-logins.
func (s *Store) Stats() Stats {
	return Stats{
		Logins:          s.stats.logins.Load(),
		Renewals:        s.stats.renewals.Load(),
		LoginFailures:   s.stats.loginFailures.Load(),
		RenewalFailures: s.stats.renewalFailures.Load(),
		LeaderWaits:     s.stats.leaderWaits.Load(),
	}
}

// client returns a Vault client with a usable token and the store
// namespace, waiting for the token goroutine if the token has expired.
func (s *Store) client(ctx context.Context) (*api.Client, error) {
	for waited := false; ; waited = true {
		s.mu.Lock()
		sealed, tok, kv, ch, lastErr := s.sealed, s.tok, s.kv, s.changed, s.lastErr
		s.mu.Unlock()
		switch {
		case sealed:
			return nil, ErrSealed
		case tok.usable(s.cfg.Now()):
			return kv, nil
		case waited && lastErr != nil:
			return nil, fmt.Errorf("vault: no valid token: %w", lastErr)
		}
		s.kickRenewer()
		select {
		case <-ch:
		case <-s.done():
			return nil, errClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Store) done() <-chan struct{} { return s.stop }

func (s *Store) kickRenewer() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// setToken puts tok into use and wakes everyone waiting for a token.
func (s *Store) setToken(tok *token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv := s.kv
	if s.tok == nil || s.tok.id != tok.id {
		c, err := s.base.Clone()
		if err != nil {
			return fmt.Errorf("vault: %w", err)
		}
		c.SetToken(tok.id)
		if s.cfg.Namespace != "" {
			c.SetNamespace(s.cfg.Namespace)
		}
		kv = c
	}
	s.tok, s.kv, s.lastErr = tok, kv, nil
	s.notifyLocked()
	return nil
}

// fail records a failed login and wakes everyone waiting for a token.
func (s *Store) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	s.notifyLocked()
}

func (s *Store) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Store) current() *token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

func (s *Store) isSealed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealed
}

func (s *Store) setSealed(sealed bool) {
	s.mu.Lock()
	was := s.sealed
	s.sealed = sealed
	s.mu.Unlock()
	switch {
	case sealed && !was:
		s.cfg.Logger.Warn("vault: key store is sealed")
	case !sealed && was:
		s.cfg.Logger.Info("vault: key store is unsealed")
		select {
		case s.unseal <- struct{}{}:
		default:
		}
	}
}

// loginClient returns a client without token in the login namespace.
func (s *Store) loginClient(tokenID string) (*api.Client, error) {
	c, err := s.base.Clone()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if s.cfg.loginNS != "" {
		c.SetNamespace(s.cfg.loginNS)
	}
	if tokenID != "" {
		c.SetToken(tokenID)
	}
	return c, nil
}

// login authenticates with the configured method.
func (s *Store) login(ctx context.Context) (*token, error) {
	tok, err := s.doLogin(ctx)
	if err != nil {
		s.stats.loginFailures.Add(1)
		s.cfg.Logger.Warn("vault: login failed", "method", s.cfg.authMethod, "error", err)
		return nil, err
	}
	s.stats.logins.Add(1)
	s.cfg.Logger.Info("vault: logged in", "method", s.cfg.authMethod, "ttl", tok.ttl, "renewable", tok.renewable)
	return tok, nil
}

func (s *Store) doLogin(ctx context.Context) (*token, error) {
	c, err := s.loginClient("")
	if err != nil {
		return nil, err
	}
	var body map[string]any
	if a := s.cfg.AppRole; a != nil {
		body = map[string]any{"role_id": a.ID, "secret_id": a.Secret}
	} else {
		jwt, err := readJWT(s.cfg.Kubernetes.JWT)
		if err != nil {
			return nil, err
		}
		body = map[string]any{"role": s.cfg.Kubernetes.Role, "jwt": jwt}
	}
	issued := s.cfg.Now()
	sec, err := c.Logical().WriteWithContext(ctx, s.cfg.loginPath, body)
	if err != nil {
		return nil, fmt.Errorf("vault: login (%s): %w", s.cfg.authMethod, unreachable(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault: login (%s): response has no token", s.cfg.authMethod)
	}
	ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second
	return &token{id: sec.Auth.ClientToken, ttl: ttl, loginTTL: ttl, renewable: sec.Auth.Renewable, issued: issued}, nil
}

// readJWT returns jwt, or the content of the file it names if it contains
// a '/'.
func readJWT(jwt string) (string, error) {
	if !strings.Contains(jwt, "/") {
		return jwt, nil
	}
	f, err := os.Open(jwt)
	if err != nil {
		return "", fmt.Errorf("vault: kubernetes jwt: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJWTFileSize+1))
	if err != nil {
		return "", fmt.Errorf("vault: kubernetes jwt: %w", err)
	}
	if len(b) > maxJWTFileSize {
		return "", errors.New("vault: kubernetes jwt: file too large")
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New("vault: kubernetes jwt: file is empty")
	}
	return v, nil
}

// unreachable wraps errors that mean Vault could not be reached.
func unreachable(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusServiceUnavailable {
			return &keystore.UnreachableError{Err: err}
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &keystore.UnreachableError{Err: err}
}

func isClientError(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500
}
