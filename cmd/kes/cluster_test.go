package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/peerbin"
	"github.com/openkes/kes/internal/proxytest"
	"github.com/openkes/kes/internal/vaulttest"
)

// clusterCacheAny is the nodes' cache.expiry.any: short enough to see a
// delete reach every node within the test.
const clusterCacheAny = 10 * time.Second

// kesNode is one kes server process of the cluster test.
type kesNode struct {
	name, addr string
	srv        *scriptServer
	past       string // stderr of the node's earlier processes

	electionLines int // reported by newElectionLines
}

func (n *kesNode) start() error {
	if n.srv.stderr != nil {
		n.past += n.srv.stderr.String()
	}
	_, err := n.srv.start()
	return err
}

// kill kills the node with SIGKILL and waits until it is gone.
func (n *kesNode) kill() {
	n.srv.cmd.Process.Kill()
	<-n.srv.done
}

// newElectionLines returns the node's log lines about calls that waited
// for a Vault leader election, since the last call.
func (n *kesNode) newElectionLines() []string {
	var lines []string
	for _, l := range strings.Split(n.past+n.srv.stderr.String(), "\n") {
		if _, msg, ok := strings.Cut(l, "msg="); ok && strings.Contains(msg, "vault: the cluster") {
			lines = append(lines, msg)
		}
	}
	lines, n.electionLines = lines[min(n.electionLines, len(lines)):], len(lines)
	return lines
}

// log returns the end of the node's stderr, over its restarts.
func (n *kesNode) log() string {
	return peerbin.LastLines(n.past+n.srv.stderr.String(), 40)
}

// kesCluster is three kes servers on a three-node Vault Raft cluster, and
// nginx in front of them in TLS-proxy mode.
type kesCluster struct {
	vc    *vaulttest.Cluster
	nodes []*kesNode
	nginx *proxytest.Proxy
	ca    *proxytest.CA
	admin *proxytest.Cert
	names map[string]string // host:port → node name
}

// startKesCluster starts the Vault cluster, gives the kes servers an
// AppRole on it, and starts the kes servers (each on its own Vault node)
// and nginx. Every certificate comes from one CA: the servers' (valid for
// 127.0.0.1 and localhost), nginx's own two and the admin's.
func startKesCluster(t *testing.T) *kesCluster {
	t.Helper()
	start := time.Now()
	vc := vaulttest.StartCluster(t, 3)
	t.Logf("Vault cluster up after %v", time.Since(start).Round(100*time.Millisecond))
	vc.EnableKV(t, "kes-kv", "v2")
	vc.WritePolicy(t, "kes", `
path "kes-kv/data/*"     { capabilities = ["create", "read"] }
path "kes-kv/metadata/*" { capabilities = ["list", "delete"] }`)
	vc.AppRole(t, "approle", "kes", "kes-role-id", "kes-secret-id", map[string]any{"token_policies": "kes", "token_ttl": "1h"})

	ca := proxytest.NewCA(t)
	c := &kesCluster{vc: vc, ca: ca, admin: ca.Issue(t, "admin", proxytest.ClientAuth), names: map[string]string{}}
	serverCert := ca.Issue(t, "kes", proxytest.ServerAuth)
	proxyCert := ca.Issue(t, "nginx", proxytest.ClientAuth)
	bin, dir := kesBinary(t), t.TempDir()
	t.Logf("kes binary built after %v", time.Since(start).Round(100*time.Millisecond))
	var upstreams []string
	for i, vn := range vc.Nodes {
		n := &kesNode{name: fmt.Sprintf("kes %d", i+1), addr: loopbackAddr(t)}
		config := fmt.Sprintf(`version: v1
address: %s
admin:
  identity: %s
tls:
  key: %s
  cert: %s
  proxy:
    identities: [%s]
    header:
      cert: %s
cache:
  expiry:
    any: %v
    unused: 1m
    offline: 10m
log:
  audit: off
keystore:
  vault:
    endpoint: %s
    engine: kes-kv
    version: v2
    prefix: cluster
    approle:
      id: kes-role-id
      secret: kes-secret-id
    status:
      ping: 2s
`, n.addr, c.admin.Identity, serverCert.KeyFile, serverCert.CertFile, proxyCert.Identity, proxytest.DefaultHeader,
			clusterCacheAny, vn.URL())
		n.srv = &scriptServer{bin: bin, config: filepath.Join(dir, fmt.Sprintf("config-%d.yml", i+1))}
		if err := os.WriteFile(n.srv.config, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.srv.stop)
		if err := n.start(); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		c.nodes = append(c.nodes, n)
		c.names[n.addr] = n.name
		upstreams = append(upstreams, n.addr)
	}
	c.nginx = proxytest.Nginx(t, proxytest.Config{
		Upstreams:  upstreams,
		UpstreamCA: ca.File,
		Server:     ca.Issue(t, "nginx-front", proxytest.ServerAuth),
		Client:     proxyCert,
		ClientCA:   ca.File,
	})
	c.names[c.nginx.Addr] = "nginx"
	return c
}

// client returns an admin client of endpoints.
func (c *kesCluster) client(t *testing.T, endpoints ...string) *kes.Client {
	t.Helper()
	cl, err := kes.NewClient(endpoints, kes.WithCertificate(c.admin.TLS), kes.WithRootCAs(c.ca.Pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// crossNode creates a key through each server and uses it through the two
// others at once: they have not cached it, so they read the store.
func (c *kesCluster) crossNode(t *testing.T, phase string) []*kes.Client {
	t.Helper()
	var perNode []*kes.Client
	for _, n := range c.nodes {
		perNode = append(perNode, c.client(t, n.addr))
	}
	for i, cl := range perNode {
		name := fmt.Sprintf("cross-%s-%d", phase, i+1)
		if err := cl.CreateKey(t.Context(), name); err != nil {
			t.Fatalf("create %s through kes %d: %v", name, i+1, err)
		}
		for j, other := range perNode {
			if j == i {
				continue
			}
			dek, err := other.GenerateKey(t.Context(), name, nil)
			if err != nil {
				t.Fatalf("%s created through kes %d, generate through kes %d: %v", name, i+1, j+1, err)
			}
			if _, err := cl.Decrypt(t.Context(), name, dek.Ciphertext, nil); err != nil {
				t.Fatalf("%s: decrypt through kes %d what kes %d generated: %v", name, i+1, j+1, err)
			}
		}
	}
	return perNode
}

// dump logs the end of every node's log, for a failure.
func (c *kesCluster) dump(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		t.Logf("%s (%s) stderr:\n%s", n.name, n.addr, n.log())
	}
	for _, vn := range c.vc.Nodes {
		t.Logf("Vault %s (%s) log:\n%s", vn.ID, vn.Addr, vn.Log())
	}
	// nginx logs every closed keepalive connection at info.
	var lines []string
	for _, l := range strings.Split(c.nginx.Logs(), "\n") {
		if !strings.Contains(l, "keepalive connection") && !strings.Contains(l, "while waiting for request") {
			lines = append(lines, l)
		}
	}
	t.Logf("%s", strings.Join(lines, "\n"))
}

// disrupt runs the load of client through a kes kill and a Vault leader
// kill: victim is killed with SIGKILL and started again, then the Vault
// leader is killed, a new leader is elected, and the old leader is
// started again and rejoins. No request of the load may fail.
func (c *kesCluster) disrupt(t *testing.T, variant string, client *kes.Client, victim *kesNode) {
	tl := newTimeline()
	load := &clusterLoad{client: client, prefix: variant + "-key", tl: tl, names: c.names}
	for i := range 4 {
		name := fmt.Sprintf("%s-hot-%d", variant, i)
		if err := client.CreateKey(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		load.hot = append(load.hot, name)
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() { load.run(ctx, w) })
	}
	stopLoad := func() {
		stop()
		wg.Wait()
	}
	defer stopLoad()
	// Each phase lets the load run for a while on the real clock.
	steady := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-t.Context().Done():
		}
	}

	tl.mark(t, "load started (6 workers)")
	steady(3 * time.Second)
	victim.kill()
	tl.mark(t, "killed %s (SIGKILL)", victim.name)
	steady(2 * time.Second)
	if err := victim.start(); err != nil {
		t.Fatalf("restart %s: %v", victim.name, err)
	}
	tl.mark(t, "restarted %s", victim.name)
	steady(3 * time.Second)

	leader := c.vc.Leader(t)
	leader.Kill()
	tl.mark(t, "killed the Vault leader %s (SIGKILL)", leader.ID)
	next := c.vc.Leader(t)
	tl.mark(t, "%s is the new Vault leader", next.ID)
	steady(4 * time.Second)
	c.vc.Restart(t, leader)
	c.vc.WaitVoters(t, 3)
	tl.mark(t, "%s restarted, unsealed and rejoined", leader.ID)
	steady(3 * time.Second)
	stopLoad()
	tl.mark(t, "load stopped")

	t.Logf("%s: requests: %s; kes node kills: 1; Vault leader kills: 1", variant, load.counts())
	for _, n := range c.nodes {
		for _, l := range n.newElectionLines() {
			t.Logf("%s: %s", n.name, l)
		}
	}
	if !load.report(t) {
		c.dump(t)
	}
}

// TestVaultRaftCluster runs three kes servers, each on a different node of
// a three-node Vault cluster with integrated storage (Raft), under a mixed
// load, first from an SDK client that knows all three endpoints ("sdk"),
// then from one behind nginx, which balances over the three servers and
// forwards its clients' certificates to them ("nginx", TLS-proxy mode).
// During each load one kes server is killed and started again, and the
// Vault leader is killed. No client request may fail. A key created
// through one kes server is usable through the others at once, and a key
// deleted through one is gone from the others within cache.expiry.any.
func TestVaultRaftCluster(t *testing.T) {
	start := time.Now()
	c := startKesCluster(t)
	c.crossNode(t, "before")
	t.Logf("cluster up after %v", time.Since(start).Round(100*time.Millisecond))
	t.Run("sdk", func(t *testing.T) {
		endpoints := make([]string, len(c.nodes))
		for i, n := range c.nodes {
			endpoints[i] = n.addr
		}
		c.disrupt(t, "sdk", c.client(t, endpoints...), c.nodes[1])
	})
	t.Run("nginx", func(t *testing.T) {
		c.disrupt(t, "nginx", c.client(t, c.nginx.Addr), c.nodes[2])
	})
	perNode := c.crossNode(t, "after")

	// A key deleted through kes 1 is gone there at once, and through the
	// others, which have it cached, within cache.expiry.any: a request
	// that started later than that after the delete must not be served.
	deleted := "deleted-while-cached"
	if err := perNode[0].CreateKey(t.Context(), deleted); err != nil {
		t.Fatal(err)
	}
	for i, cl := range perNode[1:] {
		if _, err := cl.GenerateKey(t.Context(), deleted, nil); err != nil { // now cached there
			t.Fatalf("generate through kes %d: %v", i+2, err)
		}
	}
	deleteAt := time.Now()
	if err := perNode[0].DeleteKey(t.Context(), deleted); err != nil {
		t.Fatal(err)
	}
	if _, err := perNode[0].GenerateKey(t.Context(), deleted, nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("generate through kes 1 right after its delete: %v, want %v", err, kes.ErrKeyNotFound)
	}
	// Poll the others in turn until both answer "not found".
	lastServed := map[int]time.Duration{} // node → when (since deleteAt) the last request it served was sent
	for gone := map[int]bool{}; len(gone) < len(perNode)-1; {
		for i := 1; i < len(perNode); i++ {
			if gone[i] {
				continue
			}
			sent := time.Since(deleteAt)
			_, err := perNode[i].GenerateKey(t.Context(), deleted, nil)
			switch {
			case errors.Is(err, kes.ErrKeyNotFound):
				gone[i] = true
			case err != nil:
				t.Fatalf("generate through kes %d after the delete: %v", i+1, err)
			case sent > clusterCacheAny:
				t.Fatalf("kes %d still serves the key deleted %v ago, want at most cache.expiry.any (%v)", i+1, sent.Round(time.Millisecond), clusterCacheAny)
			default:
				lastServed[i] = sent
			}
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	for i := 1; i < len(perNode); i++ {
		t.Logf("kes %d served the deleted key from its cache until %v after the delete (cache.expiry.any %v)",
			i+1, lastServed[i].Round(time.Millisecond), clusterCacheAny)
	}
}

// loopbackAddr returns a free loopback address, so that a restarted server
// comes back on the endpoint its clients know.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
