package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/vaulttest"
)

// clusterLoad is the mixed load of the cluster test and its counts.
type clusterLoad struct {
	client *kes.Client
	hot    []string // keys created before the load

	generates, decrypts, describes, creates atomic.Int64 // answered requests
	createRetried                           atomic.Int64 // creates answered "exists" after the SDK repeated them
	failures                                atomic.Int64
	seq                                     atomic.Int64

	mu     sync.Mutex
	errors []string // the first failures
}

// run sends requests until ctx ends: a data key generated and decrypted
// under a hot key, a hot key described, or a new key created and then
// described, which MinIO does when it creates a bucket key.
func (l *clusterLoad) run(ctx context.Context, worker int) {
	rnd := rand.New(rand.NewPCG(uint64(worker), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		name := l.hot[rnd.IntN(len(l.hot))]
		switch r := rnd.IntN(10); {
		case r < 6:
			assoc := []byte(fmt.Sprintf("bucket-%d/object", rnd.IntN(100)))
			dek, err := l.client.GenerateKey(ctx, name, assoc)
			if !l.count(ctx, "generate "+name, &l.generates, err) {
				continue
			}
			plain, err := l.client.Decrypt(ctx, name, dek.Ciphertext, assoc)
			if l.count(ctx, "decrypt "+name, &l.decrypts, err) && !bytes.Equal(plain, dek.Plaintext) {
				l.fail("decrypt %s: wrong plaintext", name)
			}
		case r < 8:
			_, err := l.client.DescribeKey(ctx, name)
			l.count(ctx, "describe "+name, &l.describes, err)
		default:
			name := fmt.Sprintf("bucket-key-%d-%d", worker, l.seq.Add(1))
			err := l.client.CreateKey(ctx, name)
			if errors.Is(err, kes.ErrKeyExists) {
				// The first attempt reached a node that was killed
				// before it answered, but after the key was stored; the
				// name is this worker's alone, so the key is ours.
				l.createRetried.Add(1)
				err = nil
			}
			if !l.count(ctx, "create "+name, &l.creates, err) {
				continue
			}
			_, err = l.client.DescribeKey(ctx, name)
			l.count(ctx, "describe "+name, &l.describes, err)
		}
	}
}

// count counts an answered request, or a failure unless the load was
// stopped while it was in flight.
func (l *clusterLoad) count(ctx context.Context, what string, n *atomic.Int64, err error) bool {
	if err == nil {
		n.Add(1)
		return true
	}
	if ctx.Err() == nil {
		l.fail("%s: %v", what, err)
	}
	return false
}

func (l *clusterLoad) fail(format string, args ...any) {
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) < 10 {
		l.errors = append(l.errors, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
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

// TestVaultRaftCluster runs three kes servers, each on a different node of
// a three-node Vault cluster with integrated storage (Raft), under a mixed
// load from one SDK client that knows all three endpoints. During the load
// one kes server is killed (SIGKILL) and started again, then the Vault
// leader is killed, a new leader is elected, and the old leader is started
// again and rejoins. No client request may fail. A key created through one
// kes server is usable through the others at once, before and after.
func TestVaultRaftCluster(t *testing.T) {
	vc := vaulttest.StartCluster(t, 3)
	vc.EnableKV(t, "kes-kv", "v2")
	vc.WritePolicy(t, "kes", `
path "kes-kv/data/*"     { capabilities = ["create", "read"] }
path "kes-kv/metadata/*" { capabilities = ["list", "delete"] }`)
	vc.AppRole(t, "approle", "kes", "kes-role-id", "kes-secret-id", map[string]any{"token_policies": "kes", "token_ttl": "1h"})

	dir := t.TempDir()
	if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := kesBinary(t)
	// Short enough to see a delete reach every node within the test.
	const cacheAny = 15 * time.Second
	var (
		servers   []*scriptServer
		endpoints []string
	)
	for i, vn := range vc.Nodes {
		addr := loopbackAddr(t)
		config := fmt.Sprintf(`version: v1
address: %s
admin:
  identity: %s
tls:
  key: %s
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
`, addr, admin.Identity(), filepath.Join(dir, "server.key"), filepath.Join(dir, "server.crt"), cacheAny, vn.URL())
		s := &scriptServer{bin: bin, config: filepath.Join(dir, fmt.Sprintf("config-%d.yml", i+1))}
		if err := os.WriteFile(s.config, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.stop)
		if _, err := s.start(); err != nil {
			t.Fatalf("kes %d: %v", i+1, err)
		}
		servers, endpoints = append(servers, s), append(endpoints, addr)
	}

	caPEM, err := os.ReadFile(filepath.Join(dir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	newClient := func(endpoints ...string) *kes.Client {
		c, err := kes.NewClient(endpoints, kes.WithAPIKey(admin), kes.WithRootCAs(pool))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	var perNode []*kes.Client
	for _, e := range endpoints {
		perNode = append(perNode, newClient(e))
	}
	// crossNode creates a key through each server and uses it through the
	// two others at once: they have not cached it, so they read the store.
	crossNode := func(phase string) {
		t.Helper()
		for i, c := range perNode {
			name := fmt.Sprintf("cross-%s-%d", phase, i+1)
			if err := c.CreateKey(t.Context(), name); err != nil {
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
				if _, err := c.Decrypt(t.Context(), name, dek.Ciphertext, nil); err != nil {
					t.Fatalf("%s: decrypt through kes %d what kes %d generated: %v", name, i+1, j+1, err)
				}
			}
		}
	}
	crossNode("before")

	load := &clusterLoad{client: newClient(endpoints...)}
	for i := range 4 {
		name := fmt.Sprintf("hot-%d", i)
		if err := load.client.CreateKey(t.Context(), name); err != nil {
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

	var nodeKills, leaderKills int
	steady(3 * time.Second)
	victim := servers[1]
	victim.cmd.Process.Kill()
	<-victim.done
	nodeKills++
	t.Logf("killed kes 2 (SIGKILL)")
	steady(2 * time.Second)
	if _, err := victim.start(); err != nil {
		t.Fatalf("restart kes 2: %v", err)
	}
	t.Logf("restarted kes 2")
	steady(3 * time.Second)

	leader := vc.Leader(t)
	leader.Kill()
	leaderKills++
	t.Logf("killed the Vault leader %s (SIGKILL)", leader.ID)
	next := vc.Leader(t)
	t.Logf("new Vault leader %s", next.ID)
	steady(4 * time.Second)
	vc.Restart(t, leader)
	vc.WaitVoters(t, 3)
	t.Logf("%s restarted, unsealed and rejoined", leader.ID)
	steady(3 * time.Second)
	stopLoad()

	crossNode("after")
	// A key deleted through kes 1 is gone there at once, and through the
	// others, which have it cached, within cache.expiry.any.
	deleted := "cross-after-1"
	if err := perNode[0].DeleteKey(t.Context(), deleted); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := perNode[0].GenerateKey(t.Context(), deleted, nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("generate through kes 1 right after its delete: %v, want %v", err, kes.ErrKeyNotFound)
	}
	for i, c := range perNode[1:] {
		vaulttest.Eventually(t, cacheAny+5*time.Second, fmt.Sprintf("delete seen by kes %d", i+2), func() error {
			_, err := c.GenerateKey(t.Context(), deleted, nil)
			if errors.Is(err, kes.ErrKeyNotFound) {
				return nil
			}
			return fmt.Errorf("generate: %v", err)
		})
	}
	if d := time.Since(start); d > cacheAny+time.Second {
		t.Errorf("the delete took %v to reach every node, want at most cache.expiry.any (%v)", d, cacheAny)
	} else {
		t.Logf("the delete reached every node after %v (cache.expiry.any %v)", d.Round(100*time.Millisecond), cacheAny)
	}
	t.Logf("requests: %d generate, %d decrypt, %d describe, %d create (%d answered \"exists\" after an SDK retry); kes node kills: %d; Vault leader kills: %d; failures: %d",
		load.generates.Load(), load.decrypts.Load(), load.describes.Load(), load.creates.Load(), load.createRetried.Load(),
		nodeKills, leaderKills, load.failures.Load())
	for _, e := range load.errors {
		t.Errorf("failed request: %s", e)
	}
	if load.failures.Load() != 0 {
		t.Errorf("%d client requests failed", load.failures.Load())
		for i, s := range servers {
			t.Logf("kes %d stderr:\n%s", i+1, s.stderr.String())
		}
	}
}
