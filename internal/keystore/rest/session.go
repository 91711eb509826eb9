package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// renewTimeout bounds one background renewal.
const renewTimeout = 30 * time.Second

// RefreshFunc obtains a token. current is the token in use ("" for a fresh
// login); a vendor with a renew call may renew it, else it logs in again.
// It returns the token and how long it is valid (<= 0: unknown).
type RefreshFunc func(ctx context.Context, current string) (token string, ttl time.Duration, err error)

// Session holds a login token and renews it at half its lifetime in a
// goroutine it owns until [Session.Close]. It is safe for concurrent use.
type Session struct {
	refresh  RefreshFunc
	retry    time.Duration // wait after a failed renewal
	fallback time.Duration // renewal interval when the lifetime is unknown
	logger   *slog.Logger
	store    string

	loginMu sync.Mutex // one login at a time
	mu      sync.Mutex
	token   string

	stop      chan struct{}
	cancel    context.CancelFunc // cancels a renewal in flight
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// SessionConfig configures [StartSession].
type SessionConfig struct {
	Refresh RefreshFunc
	// Retry is the wait after a failed renewal before the next try.
	Retry time.Duration
	// Fallback is the renewal interval for a token of unknown lifetime.
	Fallback time.Duration
	// Logger receives renewal failures (never tokens); Store names the
	// store in them.
	Logger *slog.Logger
	Store  string
}

// StartSession logs in once (bounded by ctx) and starts the renewal
// goroutine.
func StartSession(ctx context.Context, c SessionConfig) (*Session, error) {
	s := &Session{
		refresh:  c.Refresh,
		retry:    c.Retry,
		fallback: c.Fallback,
		logger:   c.Logger,
		store:    c.Store,
		stop:     make(chan struct{}),
	}
	tok, ttl, err := s.refresh(ctx, "")
	if err != nil {
		return nil, err
	}
	s.token = tok
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.loop(bg, s.next(ttl))
	return s, nil
}

// Token returns the token in use.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// Relogin replaces a token that the server refused (stale) by a fresh
// login, unless another caller has replaced it already, and returns the
// token to retry with.
func (s *Session) Relogin(ctx context.Context, stale string) (string, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if tok := s.Token(); tok != stale {
		return tok, nil
	}
	tok, _, err := s.refresh(ctx, "")
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
	return tok, nil
}

// Do sends r through c with the session's token, which auth puts into the
// request headers. If the server answers 401 (the token expired or was
// revoked) it logs in again once, shared with concurrent callers (see
// [Session.Relogin]), and repeats r with the new token.
func (s *Session) Do(ctx context.Context, c *Client, r *Request, auth func(h http.Header, token string)) (*Response, error) {
	tok := s.Token()
	r.Auth = func(h http.Header) { auth(h, tok) }
	resp, err := c.Do(ctx, r)
	if err != nil || resp.Status != http.StatusUnauthorized {
		return resp, err
	}
	if tok, err = s.Relogin(ctx, tok); err != nil {
		return nil, err
	}
	return c.Do(ctx, r)
}

// Close stops the renewal goroutine and waits for it. It is safe to call
// more than once.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.cancel()
		s.wg.Wait()
	})
}

func (s *Session) next(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return s.fallback
	}
	return ttl / 2
}

func (s *Session) loop(ctx context.Context, wait time.Duration) {
	defer s.wg.Done()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.loginMu.Lock()
		cur := s.Token()
		rctx, cancel := context.WithTimeout(ctx, renewTimeout)
		tok, ttl, err := s.refresh(rctx, cur)
		cancel()
		if err == nil {
			s.mu.Lock()
			s.token = tok
			s.mu.Unlock()
		}
		s.loginMu.Unlock()
		switch {
		case err == nil:
			t.Reset(s.next(ttl))
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			return
		default:
			s.logger.Warn("key store login renewal failed", "store", s.store, "err", err, "retry_in", s.retry)
			t.Reset(s.retry)
		}
	}
}
