package vault

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/vault/api"
)

// A Vault cluster with integrated storage (Raft) or another HA backend has
// one active node; the others are standbys that forward every request to
// it. When the active node dies, the cluster takes a few seconds to elect
// a new one (in cmd/kes TestVaultRaftCluster, Vault 1.14 on loopback: 2.5
// to 5 s, and calls waited up to 8 s on a busy machine). In that
// window a standby the store talks to is up and unsealed, but answers a
// forwarded request with 500 ("active cluster node not found") or 503 ("no
// active Vault instance found"), or redirects it to the address of the
// dead node, which then refuses the connection. Every node of the cluster
// behaves so at once, so failing the call fast does not help the client:
// another KES node on another Vault node fails it too. The store therefore
// waits for the election, within the call's context, when its own node
// says it is fine; a node that is down itself (its own address refuses the
// connection, or it is sealed) fails at once, so that clients move on to
// a KES node whose Vault node is up.
const (
	// leaderWait bounds how long one store call waits for an election.
	leaderWait = 15 * time.Second
	// leaderPoll is the pause between two attempts of a call.
	leaderPoll = 250 * time.Millisecond
	// healthTimeout bounds the health check of the store's own node.
	healthTimeout = 2 * time.Second
)

// do runs op with a client of the current token, and again, until
// leaderWait has passed or ctx ends, while its error is one that a leader
// election of the Vault cluster explains (see awaitLeader). It returns
// op's last error.
func (s *Store) do(ctx context.Context, op func(c *api.Client) error) error {
	start := s.cfg.Now()
	waited := false
	for {
		c, err := s.client(ctx)
		if err != nil {
			return err
		}
		err = op(c)
		if err == nil {
			if waited && s.electing.CompareAndSwap(true, false) {
				s.cfg.Logger.Info("vault: the cluster has an active node again",
					"waited", s.cfg.Now().Sub(start).Round(time.Millisecond))
			}
			return nil
		}
		if s.cfg.Now().Sub(start) >= leaderWait || !s.awaitLeader(ctx, err) {
			return err
		}
		waited = true
		s.stats.leaderWaits.Add(1)
		if s.electing.CompareAndSwap(false, true) {
			s.cfg.Logger.Warn("vault: the cluster has no reachable active node; calls wait for the election", "error", err)
		}
		t := time.NewTimer(leaderPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-s.done():
			t.Stop()
			return err
		}
	}
}

// awaitLeader reports whether err, the error of a call to the store's
// Vault node, is one of a cluster without a reachable active node while
// that node itself is up: the call was redirected to another address that
// did not answer, or the node answered 5xx while its health says it is an
// unsealed standby.
func (s *Store) awaitLeader(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	redirected := false
	if re, ok := errors.AsType[*api.ResponseError](err); ok {
		if re.StatusCode < 500 || re.StatusCode == http.StatusNotImplemented {
			return false
		}
	} else if ue, ok := errors.AsType[*url.Error](err); ok {
		u, perr := url.Parse(ue.URL)
		if perr != nil || u.Host == s.host {
			return false // the store's own node does not answer
		}
		redirected = true
	} else {
		return false
	}
	hctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	h, herr := s.health.Sys().HealthWithContext(hctx)
	if herr != nil || !h.Initialized || h.Sealed {
		return false
	}
	return redirected || h.Standby || h.PerformanceStandby
}
