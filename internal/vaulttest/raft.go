package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cluster is a Vault cluster with integrated storage (Raft): every node is
// a `vault server -config` process on loopback with plain HTTP listeners,
// joined to the others with retry_join, initialised with one unseal key
// and unsealed by StartCluster. Its nodes are stopped by t.Cleanup.
type Cluster struct {
	Nodes     []*Node
	RootToken string
	unsealKey string
}

// Node is one Vault server of a Cluster.
type Node struct {
	ID          string // raft node_id, node1 ...
	Addr        string // host:port of the API listener (plain HTTP)
	ClusterAddr string // host:port of the cluster listener

	*proc
}

// URL returns http://Addr.
func (n *Node) URL() string { return "http://" + n.Addr }

// StartCluster starts an n-node Raft cluster, initialises node 1, unseals
// every node and waits until the raft configuration has n voters and the
// cluster has a leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i := range n {
		node := &Node{ID: fmt.Sprintf("node%d", i+1), proc: newProc(t)}
		node.Addr = freeAddr(t)
		node.ClusterAddr = nextPort(node.Addr)
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		var joins strings.Builder
		for _, other := range c.Nodes {
			if other != node {
				fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = %q\n  }\n", other.URL())
			}
		}
		hcl := fmt.Sprintf(`storage "raft" {
  path = %q
  node_id = %q
  performance_multiplier = 1
%s}
listener "tcp" {
  address = %q
  cluster_address = %q
  tls_disable = true
}
api_addr = %q
cluster_addr = %q
disable_mlock = true
log_level = "info"
`, filepath.Join(node.dir, "raft"), node.ID, joins.String(), node.Addr, node.ClusterAddr, node.URL(), "https://"+node.ClusterAddr)
		if err := os.MkdirAll(filepath.Join(node.dir, "raft"), 0o700); err != nil {
			t.Fatal(err)
		}
		config := filepath.Join(node.dir, "vault.hcl")
		if err := os.WriteFile(config, []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
		node.args = []string{"server", "-config=" + config}
		t.Cleanup(node.Stop)
		node.launch(t)
	}
	for _, node := range c.Nodes {
		node.waitListening(t)
	}

	first := c.Nodes[0]
	resp, err := first.client(t, "").Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vaulttest: init: %v\n%s", err, first.Log())
	}
	c.RootToken, c.unsealKey = resp.RootToken, resp.Keys[0]
	c.Unseal(t, first)
	Eventually(t, startTimeout, "node1 is leader", func() error {
		l, err := first.client(t, "").Sys().Leader()
		if err != nil {
			return err
		}
		if !l.IsSelf {
			return errors.New("node1 is not leader yet")
		}
		return nil
	})
	// Autopilot promotes a node that joined to a voter once it has been
	// healthy for the stabilization time, 10s by default: 1s is enough on
	// loopback and keeps the start short.
	c.Do(t, func(vc *api.Client) error {
		_, err := vc.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]any{"server_stabilization_time": "1s"})
		return err
	})
	for _, node := range c.Nodes[1:] {
		c.Unseal(t, node)
	}
	c.WaitVoters(t, n)
	return c
}

// nextPort returns host:port+1 of addr.
func nextPort(addr string) string {
	host, port, _ := strings.Cut(addr, ":")
	var p int
	fmt.Sscan(port, &p)
	return fmt.Sprintf("%s:%d", host, p+1)
}

// Unseal unseals node with the cluster's key, repeating until the node
// reports unsealed (a node that has not yet joined finishes its join).
//
// A follower that joins by retry_join can get stuck: Vault 1.14 then
// answers every unseal with 500 "failed to create cipher: crypto/aes:
// invalid key size 0" (seen once in CI under load, for a whole minute). A
// node that has refused the key for unsealStuck is restarted on its
// directory, which begins its join again.
func (c *Cluster) Unseal(t testing.TB, node *Node) {
	t.Helper()
	cl := node.client(t, "")
	var failingSince time.Time
	Eventually(t, startTimeout, node.ID+" unsealed", func() error {
		st, err := cl.Sys().Unseal(c.unsealKey)
		if err != nil {
			if failingSince.IsZero() {
				failingSince = time.Now()
			} else if time.Since(failingSince) > unsealStuck {
				t.Logf("vaulttest: %s refused the unseal key for %v (%v): restarting it", node.ID, unsealStuck, err)
				node.Stop()
				node.start(t)
				failingSince = time.Time{}
			}
			return err
		}
		failingSince = time.Time{}
		if st.Sealed {
			return errors.New("still sealed")
		}
		return nil
	})
}

// unsealStuck is how long a node may refuse the unseal key before Unseal
// restarts it.
const unsealStuck = 15 * time.Second

// Client returns a root client for node.
func (c *Cluster) Client(t testing.TB, node *Node) *api.Client {
	t.Helper()
	return node.client(t, c.RootToken)
}

// Voters returns the raft configuration as seen by node: the node IDs of
// the voters and the leader's ID.
func (c *Cluster) Voters(ctx context.Context, t testing.TB, node *Node) (voters []string, leader string, err error) {
	sec, err := c.Client(t, node).Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
	if err != nil {
		return nil, "", err
	}
	if sec == nil {
		return nil, "", errors.New("no raft configuration")
	}
	cfg, _ := sec.Data["config"].(map[string]any)
	servers, _ := cfg["servers"].([]any)
	for _, s := range servers {
		m, _ := s.(map[string]any)
		id, _ := m["node_id"].(string)
		if v, _ := m["voter"].(bool); v {
			voters = append(voters, id)
		}
		if l, _ := m["leader"].(bool); l {
			leader = id
		}
	}
	return voters, leader, nil
}

// WaitVoters waits until the leader lists n voters.
func (c *Cluster) WaitVoters(t testing.TB, n int) {
	t.Helper()
	Eventually(t, startTimeout, fmt.Sprintf("%d raft voters", n), func() error {
		for _, node := range c.Nodes {
			if !node.Running() {
				continue
			}
			v, _, err := c.Voters(context.Background(), t, node)
			if err != nil {
				continue
			}
			if len(v) == n {
				return nil
			}
			return fmt.Errorf("voters %v", v)
		}
		return errors.New("no node answers")
	})
}

// Leader returns the running node that is the active node, waiting until
// one of the running nodes says it is.
func (c *Cluster) Leader(t testing.TB) *Node {
	t.Helper()
	var leader *Node
	Eventually(t, startTimeout, "a raft leader", func() error {
		for _, node := range c.Nodes {
			if !node.Running() {
				continue
			}
			l, err := node.client(t, "").Sys().Leader()
			if err == nil && l.IsSelf {
				leader = node
				return nil
			}
		}
		return errors.New("no running node is the leader")
	})
	return leader
}

// EnableKV mounts a K/V engine ("v1" or "v2") at path through the leader
// and waits until every running node answers for it.
func (c *Cluster) EnableKV(t testing.TB, path, version string) {
	t.Helper()
	v := strings.TrimPrefix(version, "v")
	if err := c.Client(t, c.Leader(t)).Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": v}}); err != nil {
		t.Fatalf("vaulttest: mount %s: %v", path, err)
	}
	for _, node := range c.Nodes {
		cl := c.Client(t, node)
		Eventually(t, startTimeout, "kv mount "+path+" on "+node.ID, func() error {
			if v == "2" {
				_, err := cl.Logical().List(path + "/metadata")
				return err
			}
			_, err := cl.Logical().List(path)
			return err
		})
	}
}

func (n *Node) client(t testing.TB, token string) *api.Client {
	t.Helper()
	conf := api.DefaultConfig()
	conf.Address = n.URL()
	conf.MaxRetries = 0
	// Long enough for a write on a machine that is busy with other
	// tests: a call that Vault completes after the client gave up (init
	// above all: its root token and unseal key would be lost) fails the
	// test. A dead node refuses at once; polls end with their own timeout.
	conf.Timeout = 30 * time.Second
	c, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	if token == "" {
		c.ClearToken()
	}
	c.ClearNamespace()
	return c
}

// start starts the node's process and waits until its API listener answers
// (sealed or not).
func (n *Node) start(t testing.TB) {
	t.Helper()
	n.launch(t)
	n.waitListening(t)
}

// waitListening waits until the API listener of the launched node answers
// (sealed or not).
func (n *Node) waitListening(t testing.TB) {
	t.Helper()
	n.waitHealth(t, n.URL(), func(int) bool { return true })
}

// Running reports whether the node's process runs.
func (n *Node) Running() bool { return n.running() }

// Kill kills the node with SIGKILL and waits until it is gone.
func (n *Node) Kill() { n.stop(syscall.SIGKILL) }

// Stop stops the node with SIGTERM and waits until it is gone. Stopping a
// stopped node does nothing.
func (n *Node) Stop() { n.stop(syscall.SIGTERM) }

// Do runs fn with a root client of the current leader and fails t on error.
func (c *Cluster) Do(t testing.TB, fn func(c *api.Client) error) {
	t.Helper()
	if err := fn(c.Client(t, c.Leader(t))); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
}

// WritePolicy writes an ACL policy.
func (c *Cluster) WritePolicy(t testing.TB, name, rules string) {
	t.Helper()
	c.Do(t, func(vc *api.Client) error { return vc.Sys().PutPolicy(name, rules) })
}

// AppRole is [Server.AppRole] for the cluster.
func (c *Cluster) AppRole(t testing.TB, mount, role, roleID, secretID string, params map[string]any) {
	t.Helper()
	c.Do(t, func(vc *api.Client) error { return appRole(vc, mount, role, roleID, secretID, params) })
}

// Restart starts a stopped or killed node again on its addresses and raft
// directory and unseals it; it rejoins the cluster as a follower.
func (c *Cluster) Restart(t testing.TB, node *Node) {
	t.Helper()
	node.Stop()
	node.start(t)
	c.Unseal(t, node)
}
