package vault

import (
	"context"
	"errors"
	"time"
)

// renewLoop keeps a usable token in place until ctx is cancelled.
func (s *Store) renewLoop(ctx context.Context) {
	defer s.wg.Done()
	var lastKick time.Time
	for ctx.Err() == nil {
		if s.isSealed() { // paused while sealed
			select {
			case <-ctx.Done():
			case <-s.unseal:
			}
			continue
		}
		tok := s.current()
		if !tok.usable(s.cfg.Now()) {
			s.relogin(ctx, nil)
			continue
		}
		var at time.Time // zero: the token never expires, wait for a kick
		if tok.ttl > 0 {
			at = tok.issued.Add(tok.ttl * 8 / 10)
		}
		kicked := s.waitRenewal(ctx, at, &lastKick)
		if ctx.Err() != nil || s.current() != tok || s.isSealed() {
			continue
		}
		switch {
		case kicked && tok.ttl == 0:
			if err := s.lookupSelf(ctx, tok); err != nil && isClientError(err) {
				s.relogin(ctx, nil)
			}
		case !kicked && (!tok.renewable || s.cfg.MinTokenTTL > 0 && tok.ttl < s.cfg.MinTokenTTL):
			s.relogin(ctx, tok)
		default:
			if renewed, gone := s.renew(ctx, tok); !renewed {
				if gone {
					s.relogin(ctx, nil)
				} else {
					s.relogin(ctx, tok)
				}
			}
		}
	}
}

// waitRenewal waits until at (never if zero), or for a kick at most once
// per RetryInterval. It reports whether a kick ended the wait.
func (s *Store) waitRenewal(ctx context.Context, at time.Time, lastKick *time.Time) bool {
	var timeout <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(at.Sub(s.cfg.Now()))
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timeout:
			return false
		case <-s.kick:
			now := s.cfg.Now()
			if now.Sub(*lastKick) < s.cfg.RetryInterval {
				continue
			}
			*lastKick = now
			return true
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// relogin logs in and puts the new token into use. While the old token is
// still usable the new one is put into use only after min((TTL - renewal
// point)/2, 30s), so that it has reached every Vault node (replication
// lag). On failure it waits RetryInterval.
func (s *Store) relogin(ctx context.Context, old *token) {
	tok, err := s.login(ctx)
	if err != nil {
		s.fail(err)
		sleep(ctx, s.cfg.RetryInterval)
		return
	}
	if now := s.cfg.Now(); old.usable(now) && old.ttl > 0 {
		delay := min((old.ttl-old.ttl*8/10)/2, maxActivation)
		sleep(ctx, min(delay, old.expiry().Sub(now)))
	}
	if err := s.setToken(tok); err != nil {
		s.fail(err)
		return
	}
	s.drainKicks()
}

// drainKicks drops kicks that predate the token just put into use.
func (s *Store) drainKicks() {
	select {
	case <-s.kick:
	default:
	}
}

// renew renews tok with up to renewTries attempts (none after a 4xx). It
// reports whether the token was renewed and, if not, whether Vault refused
// it (the token is then treated as gone).
func (s *Store) renew(ctx context.Context, tok *token) (renewed, gone bool) {
	c, err := s.loginClient(tok.id)
	if err != nil {
		return false, false
	}
	increment := int(tok.loginTTL / time.Second)
	for try := 1; try <= renewTries; try++ {
		issued := s.cfg.Now()
		sec, err := c.Auth().Token().RenewSelfWithContext(ctx, increment)
		if err == nil && (sec == nil || sec.Auth == nil) {
			err = errors.New("vault: renew token: response has no auth")
		}
		if err == nil {
			ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second
			if ttl <= 0 { // max TTL reached
				s.cfg.Logger.Info("vault: token reached its max ttl")
				return false, false
			}
			// A TTL shorter than asked for means the token reached its max
			// TTL: it is replaced by a fresh login at its next renewal point.
			renewable := sec.Auth.Renewable && ttl >= tok.loginTTL
			next := &token{id: tok.id, ttl: ttl, loginTTL: tok.loginTTL, renewable: renewable, issued: issued}
			if err := s.setToken(next); err != nil {
				return false, false
			}
			s.drainKicks()
			s.stats.renewals.Add(1)
			s.cfg.Logger.Info("vault: token renewed", "ttl", ttl)
			return true, false
		}
		s.stats.renewalFailures.Add(1)
		s.cfg.Logger.Warn("vault: token renewal failed", "try", try, "error", err)
		if ctx.Err() != nil {
			return false, false
		}
		if isClientError(err) {
			return false, true
		}
		if try < renewTries {
			sleep(ctx, s.cfg.RetryInterval/3)
		}
	}
	return false, false
}

// lookupSelf checks that a token without TTL is still known to Vault.
func (s *Store) lookupSelf(ctx context.Context, tok *token) error {
	c, err := s.loginClient(tok.id)
	if err != nil {
		return err
	}
	_, err = c.Auth().Token().LookupSelfWithContext(ctx)
	return err
}

// pingLoop checks every StatusPing whether Vault is sealed.
func (s *Store) pingLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.StatusPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if h, err := s.health.Sys().HealthWithContext(ctx); err == nil {
			s.setSealed(h.Sealed)
		}
	}
}
