package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

// The tests here run the real server (TLS listener, cache, Vault store)
// on a real Vault 1.14 and take Vault away: killed (connections refused)
// or stopped with SIGSTOP (connections hang). Requests that need Vault
// must then fail within failFastBound, with upstream's status and
// message, once the server knows the store is down; cached keys keep
// working; and the server works again when Vault is back, without a
// restart. Figures are logged for the closing note of issue 11.

// failFastBound is what "fail fast" means: well under the 3-4 s that
// every request waited for the Vault client's retries before. Every
// measured request must be handled within it by the server (its
// kes_http_response_time histogram) and must not reach the store.
//
// The client's wall clock time is logged and held to clientBound only:
// the test machine is shared (load 10-16 on 2 cores while these tests were
// written), and there a request that does no more than load an atomic was
// seen taking 101 ms end to end once in ~700, a scheduling stall of the
// test process. Waiting for the store costs 2 s (the hung Vault's route
// timeout here) to 15 s, or 3-4 s for a killed Vault: above clientBound.
const (
	failFastBound = 100 * time.Millisecond
	clientBound   = time.Second
)

// requests per measured kind of request
const measured = 50

// setupVault creates the K/V v1 engine, the policy and the AppRole the
// server logs in with; again after a restart, which forgets them.
func setupVault(t *testing.T, v *vaulttest.Server) {
	t.Helper()
	v.EnableKV(t, "kes-kv", "v1")
	v.WritePolicy(t, "kes", `
path "kes-kv/*" { capabilities = ["create", "read", "delete", "list"] }
path "kes-kv"   { capabilities = ["list"] }`)
	v.AppRole(t, "approle", "kes", "kes-role-id", "kes-secret-id", map[string]any{"token_policies": "kes", "token_ttl": "1h"})
}

// vaultConfig is a server configuration on v, with the route timeouts
// given and cache.expiry.offline 1m.
// The store calls other than Status (the probe) are counted in calls.
func vaultConfig(t *testing.T, v *vaulttest.Server, admin kes.Identity, routes map[string]api.RouteConfig, calls *atomic.Int64) *Config {
	setupVault(t, v)
	return &Config{
		Addr:  "127.0.0.1:0",
		TLS:   tlsFiles(t),
		Admin: admin,
		Connect: func(ctx context.Context, l *slog.Logger) (keystore.Store, error) {
			st, err := vault.Connect(ctx, &vault.Config{
				Endpoint: v.URL(),
				Engine:   "kes-kv",
				AppRole:  &vault.AppRole{ID: "kes-role-id", Secret: "kes-secret-id"},
				Logger:   l,
			})
			if err != nil {
				return nil, err
			}
			return &countingStore{Store: st, calls: calls}, nil
		},
		Cache:  cache.Config{Offline: time.Minute},
		Routes: routes,
		Banner: "Hashicorp Vault",
	}
}

// countingStore counts the calls that requests make of a store; the
// cache's status probe is not counted.
type countingStore struct {
	keystore.Store
	calls *atomic.Int64
}

func (s *countingStore) Create(ctx context.Context, name string, value []byte) error {
	s.calls.Add(1)
	return s.Store.Create(ctx, name, value)
}

func (s *countingStore) Get(ctx context.Context, name string) ([]byte, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, name)
}

func (s *countingStore) Delete(ctx context.Context, name string) error {
	s.calls.Add(1)
	return s.Store.Delete(ctx, name)
}

func (s *countingStore) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	s.calls.Add(1)
	return s.Store.List(ctx, prefix, continueAt, n)
}

// caller calls the API of a running server as its admin.
type caller struct {
	t     *testing.T
	c     *http.Client
	url   string
	calls *atomic.Int64 // the store calls (countingStore)
}

// do sends a request and returns the status, the error message (for a
// non-200 answer) or body, and the time to the whole answer. A request
// that gets no answer within 30 s fails the test.
func (c caller) do(method, path, body string) (int, string, time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	start := time.Now()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s after %v: %v", method, path, time.Since(start), err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, string(b), elapsed
	}
	var e struct{ Message string }
	if err := json.Unmarshal(b, &e); err != nil {
		c.t.Fatalf("%s %s: %d with body %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Message, elapsed
}

// must calls the API and fails the test unless the answer is 200.
func (c caller) must(method, path, body string) string {
	c.t.Helper()
	code, msg, _ := c.do(method, path, body)
	if code != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, path, code, msg)
	}
	return msg
}

// metric returns the value of the sample named by name (with its labels,
// as the text format prints them).
func (c caller) metric(name string) string {
	c.t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(c.must("GET", "/v1/metrics", ""))
	if m == nil {
		c.t.Fatalf("no %s in the metrics", name)
	}
	return m[1]
}

// offlineGauge returns the value of kes_keystore_offline.
func (c caller) offlineGauge() string { return c.metric("kes_keystore_offline") }

// handledWithin returns how many counted requests the server has handled
// so far in total and within failFastBound (kes_http_response_time).
func (c caller) handledWithin() (total, fast int) {
	c.t.Helper()
	if failFastBound != 100*time.Millisecond {
		c.t.Fatal("failFastBound is not a bucket of kes_http_response_time")
	}
	body := c.must("GET", "/v1/metrics", "")
	get := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			c.t.Fatalf("no %s in the metrics", name)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return get("kes_http_response_time_count"), get(`kes_http_response_time_bucket{le="0.1"}`)
}

// waitFor calls fn until it returns nil, for at most limit, and returns
// how long that took. The server and Vault run on the real clock, so
// polling a condition is the only way to wait for them.
func waitFor(t *testing.T, limit time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	vaulttest.Eventually(t, limit, what, fn)
	return time.Since(start)
}

// measure sends n requests one after another and checks that each is
// answered with status and message, that the server handled each within
// failFastBound (if counted, the route is counted in the HTTP metrics)
// and that the client had its answer within clientBound. It logs the
// client's latencies.
func (c caller) measure(what string, n int, counted bool, method string, path func(i int) string, body string, status int, message string) {
	c.t.Helper()
	total0, fast0 := c.handledWithin()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		code, msg, d := c.do(method, path(i), body)
		if code != status || (message != "" && msg != message) {
			c.t.Fatalf("%s #%d: %d %q, want %d %q", what, i, code, msg, status, message)
		}
		lat = append(lat, d)
	}
	total, fast := c.handledWithin()
	slices.Sort(lat)
	server := "not counted in the metrics"
	if counted {
		server = fmt.Sprintf("%d of %d handled by the server within %v", fast-fast0, total-total0, failFastBound)
	}
	c.t.Logf("%-38s %d requests, all %d; client: min %v, median %v, max %v; %s", what, n, status,
		lat[0].Round(time.Microsecond), lat[n/2].Round(time.Microsecond), lat[n-1].Round(time.Microsecond), server)
	if counted && (total-total0 != n || fast-fast0 != n) {
		c.t.Errorf("%s: the server handled %d of %d requests within %v, want all", what, fast-fast0, total-total0, failFastBound)
	}
	if lat[n-1] >= clientBound {
		c.t.Errorf("%s: slowest answer took %v, want < %v", what, lat[n-1], clientBound)
	}
}

// storeCallEnded checks that no goroutine runs the store function named
// by frame (as runtime.Stack prints it) within a second: a store call that
// the route's deadline ended is cancelled, not left waiting for its store.
// A goroutine's exit has no channel to wait on, so this polls.
func storeCallEnded(t *testing.T, frame, what string) {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(buf, []byte(frame)) {
			t.Logf("%s ended %v after the answer", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s still runs a second after the answer:\n%s", what, buf)
		}
		<-tick.C
	}
}

// prepare creates the keys "cached" and "uncached" and returns a decrypt
// body for "cached", which is then in the cache.
func (c caller) prepare() string {
	c.t.Helper()
	c.must("POST", "/v1/key/create/cached", "")
	c.must("POST", "/v1/key/create/uncached", "")
	var dek struct{ Ciphertext []byte }
	if err := json.Unmarshal([]byte(c.must("POST", "/v1/key/generate/cached", "")), &dek); err != nil {
		c.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string][]byte{"ciphertext": dek.Ciphertext})
	return string(b)
}

// failsFast checks every kind of request while the store is known down:
// the ones that need it fail at once with upstream's answers, cached keys
// are served.
func (c caller) failsFast(decrypt string) {
	c.t.Helper()
	calls := c.calls.Load()
	c.measure("create (store down)", measured, true, "POST", func(i int) string { return fmt.Sprint("/v1/key/create/new-", i) }, "",
		http.StatusBadGateway, "failed to create key")
	c.measure("describe uncached key (store down)", measured, true, "GET", func(int) string { return "/v1/key/describe/uncached" }, "",
		http.StatusBadGateway, "failed to read key")
	c.measure("generate uncached key (store down)", measured, true, "POST", func(int) string { return "/v1/key/generate/uncached" }, "",
		http.StatusBadGateway, "failed to read key")
	c.measure("delete (store down)", 10, true, "DELETE", func(int) string { return "/v1/key/delete/uncached" }, "",
		http.StatusBadGateway, "failed to delete key")
	c.measure("list (store down)", 10, true, "GET", func(int) string { return "/v1/key/list/*" }, "",
		http.StatusBadGateway, "failed to list keys")
	c.measure("ready (store down)", 10, false, "GET", func(int) string { return "/v1/ready" }, "",
		http.StatusGatewayTimeout, "key store is not reachable")
	c.measure("decrypt with cached key (store down)", measured, true, "POST", func(int) string { return "/v1/key/decrypt/cached" }, decrypt,
		http.StatusOK, "")
	if n := c.calls.Load() - calls; n != 0 {
		c.t.Errorf("%d store calls while the store was known down, want 0", n)
	}
	if g := c.offlineGauge(); g != "1" {
		c.t.Errorf("kes_keystore_offline = %s while the store is down, want 1", g)
	}
}

// TestVaultKilledFailsFast: Vault is killed. A create whose route timeout
// (1 s) is shorter than the Vault client's retries (3-4 s) is answered 503
// at its deadline, not dropped. Three reads in a row that fail as
// unreachable take the store offline (the probe is set to an hour here, so
// the real calls must find it); from then on requests that need Vault fail
// in well under 100 ms. Vault restarted on the same address is found by
// the recovery probe within about a second and the server works again.
func TestVaultKilledFailsFast(t *testing.T) {
	v := vaulttest.Start(t, nil)
	admin, _ := kes.GenerateAPIKey(nil)
	calls := new(atomic.Int64)
	c := vaultConfig(t, v, admin.Identity(), map[string]api.RouteConfig{"/v1/key/create/": {Timeout: time.Second}}, calls)
	c.Cache.ProbeInterval = time.Hour
	url, _ := start(t, new(Server), c)
	call := caller{t, client(t, &admin), url, calls}
	decrypt := call.prepare()
	if g := call.offlineGauge(); g != "0" {
		t.Fatalf("kes_keystore_offline = %s with Vault up, want 0", g)
	}

	v.Stop()
	stopped := time.Now()
	code, msg, d := call.do("POST", "/v1/key/create/during-retries", "")
	t.Logf("create with a 1s route timeout, Vault killed, before detection: %d %q after %v", code, msg, d.Round(time.Millisecond))
	if code != http.StatusServiceUnavailable || msg != "request timeout exceeded" {
		t.Fatalf("create past its route timeout: %d %q, want 503 request timeout exceeded", code, msg)
	}
	if d < time.Second || d > 2*time.Second {
		t.Errorf("create past its 1s route timeout answered after %v", d)
	}
	storeCallEnded(t, "vault.(*Store).Create(", "the create's Vault call (its retries take 3-4 s)")

	// Detection by the real calls: Failures reads in a row fail as
	// unreachable, each after the Vault client's retries.
	var wg sync.WaitGroup
	for i := range cache.DefaultFailures {
		wg.Go(func() {
			code, msg, d := call.do("GET", fmt.Sprint("/v1/key/describe/missing-", i), "")
			t.Logf("describe before detection: %d %q after %v", code, msg, d.Round(time.Millisecond))
			if code != http.StatusBadGateway || msg != "failed to read key" {
				t.Errorf("describe with Vault killed: %d %q, want 502 failed to read key", code, msg)
			}
		})
	}
	wg.Wait()
	t.Logf("store found down %v after Vault was killed (%d unreachable reads)", time.Since(stopped).Round(time.Millisecond), cache.DefaultFailures)
	call.failsFast(decrypt)

	v.Restart(t)
	restarted := time.Now()
	setupVault(t, v) // a dev Vault forgets everything
	setup := time.Since(restarted)
	ready := waitFor(t, 30*time.Second, "ready after the Vault restart", func() error {
		if code, msg, _ := call.do("GET", "/v1/ready", ""); code != http.StatusOK {
			return fmt.Errorf("ready: %d %s", code, msg)
		}
		return nil
	})
	t.Logf("ready %v after Vault answered again (Vault setup took %v)", (setup + ready).Round(time.Millisecond), setup.Round(time.Millisecond))
	// The restarted dev Vault does not know the server's token: the store
	// logs in again when Vault refuses it, so the first create may fail.
	attempts := 0
	waitFor(t, 30*time.Second, "create after the Vault restart", func() error {
		attempts++
		if code, msg, _ := call.do("POST", "/v1/key/create/after-restart", ""); code != http.StatusOK {
			return fmt.Errorf("create: %d %s", code, msg)
		}
		return nil
	})
	t.Logf("create works after the Vault restart (attempt %d; the restarted dev Vault needed a new login)", attempts)
	if g := call.offlineGauge(); g != "0" {
		t.Errorf("kes_keystore_offline = %s after recovery, want 0", g)
	}
}

// TestVaultStoppedFailsFast: Vault is stopped with SIGSTOP, so connections
// hang instead of being refused. A create with a 2 s route timeout is
// answered 503 at 2 s (it used to hang until the client gave up). The
// status probe (every 2 s here, default 10 s) times out and takes the
// store offline; requests that need Vault then fail in well under 100 ms.
// After SIGCONT the recovery probe finds Vault within about a second, with
// its storage, and the first request works.
func TestVaultStoppedFailsFast(t *testing.T) {
	v := vaulttest.Start(t, nil)
	admin, _ := kes.GenerateAPIKey(nil)
	calls := new(atomic.Int64)
	c := vaultConfig(t, v, admin.Identity(), map[string]api.RouteConfig{"/v1/key/create/": {Timeout: 2 * time.Second}}, calls)
	c.Cache.ProbeInterval = 2 * time.Second
	url, _ := start(t, new(Server), c)
	call := caller{t, client(t, &admin), url, calls}
	decrypt := call.prepare()

	v.Pause(t)
	paused := time.Now()
	code, msg, d := call.do("POST", "/v1/key/create/hung", "")
	t.Logf("create with a 2s route timeout, Vault stopped: %d %q after %v", code, msg, d.Round(time.Millisecond))
	if code != http.StatusServiceUnavailable || msg != "request timeout exceeded" {
		t.Fatalf("create on a hung Vault: %d %q, want 503 request timeout exceeded", code, msg)
	}
	if d < 2*time.Second || d > 3*time.Second {
		t.Errorf("create on a hung Vault with a 2s route timeout answered after %v", d)
	}
	storeCallEnded(t, "vault.(*Store).Create(", "the create's call to the hung Vault")
	// Polled on the gauge: /v1/ready asks the hung store until the store
	// is known down, so each poll would take its route timeout.
	waitFor(t, 20*time.Second, "store found down", func() error {
		if g := call.offlineGauge(); g != "1" {
			return fmt.Errorf("kes_keystore_offline = %s", g)
		}
		return nil
	})
	t.Logf("store found down %v after SIGSTOP (status probe every 2s, timeout 2s)", time.Since(paused).Round(time.Millisecond))
	call.failsFast(decrypt)

	v.Resume(t)
	recovery := waitFor(t, 20*time.Second, "ready after SIGCONT", func() error {
		if code, msg, _ := call.do("GET", "/v1/ready", ""); code != http.StatusOK {
			return fmt.Errorf("ready: %d %s", code, msg)
		}
		return nil
	})
	t.Logf("ready %v after SIGCONT", recovery.Round(time.Millisecond))
	// The first requests after recovery work: Vault kept its storage.
	code, msg, d = call.do("POST", "/v1/key/create/after-resume", "")
	t.Logf("first create after SIGCONT: %d after %v", code, d.Round(time.Millisecond))
	if code != http.StatusOK {
		t.Fatalf("first create after recovery: %d %s", code, msg)
	}
	call.must("GET", "/v1/key/describe/uncached", "")
	call.must("POST", "/v1/key/decrypt/cached", decrypt)
	if g := call.offlineGauge(); g != "0" {
		t.Errorf("kes_keystore_offline = %s after recovery, want 0", g)
	}
}
