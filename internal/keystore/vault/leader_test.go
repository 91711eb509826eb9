package vault_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/vaulttest"
)

// standby stands in front of a real Vault as a standby node of a cluster
// whose active node died: while faults are left, it offers requests (other
// than sys/health) to fault, which answers them as it likes or returns
// false to pass them to Vault, and answers sys/health as an unsealed
// standby if standby is set. Otherwise it passes everything to Vault.
type standby struct {
	proxy *httputil.ReverseProxy
	dead  string // http://host:port where nothing listens: the dead active node

	mu      sync.Mutex
	fault   func(w http.ResponseWriter, r *http.Request) bool
	faults  int  // requests left that fault may answer
	standby bool // sys/health says standby while faults are left
	seen    int  // requests that fault answered
}

func newStandby(t *testing.T, srv *vaulttest.Server) (*standby, *httptest.Server) {
	t.Helper()
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	sb := &standby{proxy: httputil.NewSingleHostReverseProxy(target), dead: dead}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	return sb, ts
}

// failNext makes the next n requests fail with fault; sys/health reports
// a standby meanwhile if standby is set.
func (sb *standby) failNext(n int, standby bool, fault func(w http.ResponseWriter, r *http.Request) bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.fault, sb.faults, sb.standby, sb.seen = fault, n, standby, 0
}

func (sb *standby) answered() int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.seen
}

func (sb *standby) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	switch {
	case sb.faults == 0:
		sb.proxy.ServeHTTP(w, r)
	case r.URL.Path == "/v1/sys/health" && sb.standby:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(299)
		io.WriteString(w, `{"initialized":true,"sealed":false,"standby":true}`)
	case r.URL.Path == "/v1/sys/health" || !sb.fault(w, r):
		sb.proxy.ServeHTTP(w, r)
	default:
		sb.faults--
		sb.seen++
	}
}

// noActiveNode is Vault's answer of a standby that knows no active node.
func noActiveNode(w http.ResponseWriter, _ *http.Request) bool {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, `{"errors":["local node not active but active cluster node not found"]}`)
	return true
}

// redirectToDead answers as a standby whose forwarding to the active node
// failed: a redirect to the active node's address.
func (sb *standby) redirectToDead(w http.ResponseWriter, r *http.Request) bool {
	http.Redirect(w, r, sb.dead+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	return true
}

// TestLeaderElection: a store whose Vault node is a standby of a cluster
// electing a new active node waits for the election instead of failing;
// a write whose answer the election lost, but that Vault applied, is the
// call's own and succeeds; an active node's 5xx and a node that is down
// itself fail at once.
func TestLeaderElection(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	sb, ts := newStandby(t, srv)
	f := newFixture(t, srv, "v2", "", false, nil)
	cfg := f.config(t, ts.URL)
	cfg.StatusPing = -1
	s := connect(t, cfg)
	if err := s.Create(t.Context(), "k1", []byte("v1")); err != nil {
		t.Fatal(err)
	}

	t.Run("no active node", func(t *testing.T) {
		// Vault's client repeats a 500 twice itself; the store goes on.
		before := s.Stats().LeaderWaits
		sb.failNext(4, true, noActiveNode)
		v, err := s.Get(t.Context(), "k1")
		if err != nil || string(v) != "v1" {
			t.Fatalf("Get during the election: %q, %v", v, err)
		}
		if n := sb.answered(); n != 4 {
			t.Fatalf("%d requests answered as without active node, want 4", n)
		}
		if s.Stats().LeaderWaits == before {
			t.Fatal("no leader wait counted")
		}
	})

	t.Run("redirected to the dead node", func(t *testing.T) {
		before := s.Stats().LeaderWaits
		sb.failNext(2, true, sb.redirectToDead)
		if err := s.Create(t.Context(), "k2", []byte("v2")); err != nil {
			t.Fatalf("Create during the election: %v", err)
		}
		if s.Stats().LeaderWaits-before < 2 {
			t.Fatalf("%d leader waits, want 2", s.Stats().LeaderWaits-before)
		}
	})

	t.Run("answer lost after the write", func(t *testing.T) {
		// The standby forwards the write, which the active node applies,
		// and then loses the answer: the store's second attempt finds
		// the value it wrote.
		sb.failNext(1, false, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet {
				return false // the read before the write
			}
			sb.proxy.ServeHTTP(httptest.NewRecorder(), r)
			return sb.redirectToDead(w, r)
		})
		before := s.Stats().LeaderWaits
		if err := s.Create(t.Context(), "k3", []byte("v3")); err != nil {
			t.Fatalf("Create whose first answer was lost: %v", err)
		}
		if sb.answered() != 1 || s.Stats().LeaderWaits == before {
			t.Fatalf("%d writes lost, %d leader waits: the write was not repeated", sb.answered(), s.Stats().LeaderWaits-before)
		}
		if v, err := s.Get(t.Context(), "k3"); err != nil || string(v) != "v3" {
			t.Fatalf("Get: %q, %v", v, err)
		}
		// Another value under the name is someone else's.
		if err := s.Create(t.Context(), "k3", []byte("other")); !errors.Is(err, keystore.ErrExists) {
			t.Fatalf("Create of an existing name: %v, want exists", err)
		}
	})

	t.Run("active node fails", func(t *testing.T) {
		before := s.Stats().LeaderWaits
		sb.failNext(3, false, noActiveNode)
		if _, err := s.Get(t.Context(), "k1"); err == nil {
			t.Fatal("Get with the active node answering 500 succeeded")
		}
		if s.Stats().LeaderWaits != before {
			t.Fatal("an active node's 500 was waited for")
		}
	})

	t.Run("own node down", func(t *testing.T) {
		before := s.Stats().LeaderWaits
		ts.Close()
		start := time.Now()
		_, err := s.Get(t.Context(), "k1")
		if !keystore.IsUnreachable(err) {
			t.Fatalf("Get with the node down: %v, want unreachable", err)
		}
		if s.Stats().LeaderWaits != before {
			t.Fatalf("a node that is down was waited for (%v)", time.Since(start))
		}
		if strings.Contains(err.Error(), f.secretID()) || strings.Contains(err.Error(), "hvs.") {
			t.Fatalf("error holds a secret: %v", err)
		}
	})
}
