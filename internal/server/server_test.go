package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/proxytest"
)

// tlsFiles writes a server certificate for 127.0.0.1 (the clients skip
// verifying it).
func tlsFiles(t *testing.T) *api.TLSConfig {
	t.Helper()
	c := proxytest.NewCA(t).Issue(t, "localhost", proxytest.ServerAuth)
	return &api.TLSConfig{CertFile: c.CertFile, KeyFile: c.KeyFile}
}

// lockedBuffer collects what the server's goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs s with c until the test ends and returns the server's URL
// and a channel that receives the configuration of every start and
// successful reload (the first one already taken).
func start(t *testing.T, s *Server, c *Config) (url string, started <-chan *Config) {
	t.Helper()
	ch := make(chan *Config, 10)
	addrs := make(chan net.Addr, 1)
	s.Started = func(c *Config, addr net.Addr) {
		select {
		case addrs <- addr:
		default:
		}
		ch <- c
	}
	stderr := new(lockedBuffer)
	s.Stderr, s.Stdout = stderr, io.Discard
	if s.LookupEnv == nil {
		s.LookupEnv = func(string) (string, bool) { return "", false }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Log(stderr)
		}
	})
	select {
	case addr := <-addrs:
		<-ch
		return "https://" + addr.String(), ch
	case err := <-done:
		done <- err
		t.Fatalf("run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not start")
	}
	return "", nil
}

// waitStarted waits for the next successful reload.
func waitStarted(t *testing.T, started <-chan *Config) *Config {
	t.Helper()
	select {
	case c := <-started:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no reload completed")
		return nil
	}
}

// memConfig is a server configuration with an in-memory store.
func memConfig(t *testing.T, admin kes.Identity, store *mem.Store) *Config {
	return &Config{
		Addr:  "127.0.0.1:0",
		TLS:   tlsFiles(t),
		Admin: admin,
		Connect: func(_ context.Context, l *slog.Logger) (keystore.Store, error) {
			l.Info("logged in to the key store")
			return store, nil
		},
		Banner: "In Memory",
	}
}

// client returns an HTTP client with the certificate of key (none for
// nil) that trusts any server certificate.
func client(t *testing.T, key *kes.APIKey) *http.Client {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true}
	if key != nil {
		cert, err := kes.GenerateCertificate(*key, nil)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestStartEventsCounted: what the key store logs while the server starts
// (a Vault login) is counted in kes_log_error_events like every later
// record. The metrics hooks used to be set on the logs by api.New, after
// the store had connected, so that first event was lost.
func TestStartEventsCounted(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	store := new(mem.Store)
	c := memConfig(t, admin.Identity(), store)
	c.Keys = []string{"predefined"}
	url, _ := start(t, new(Server), c)

	resp, err := client(t, &admin).Get(url + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	if !regexp.MustCompile(`(?m)^kes_log_error_events 1$`).Match(body) {
		t.Fatalf("kes_log_error_events does not count the record logged at start:\n%s", grepLines(string(body), "kes_log_"))
	}
	// The config's predefined keys were created at start.
	if _, err := store.Get(t.Context(), "predefined"); err != nil {
		t.Fatalf("predefined key: %v", err)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestReload: a reload applies a changed policy and a new key store; a
// configuration that cannot be read leaves the running one in place, and
// the listen address never changes.
func TestReload(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	first, second := new(mem.Store), new(mem.Store)
	c := memConfig(t, admin.Identity(), first)
	next := make(chan func() (*Config, error), 1)
	reload := make(chan struct{})
	s := &Server{Reload: reload, ReadConfig: func() (*Config, error) { return (<-next)() }}
	url, started := start(t, s, c)

	hc := client(t, &app)
	create := func(name string) int {
		t.Helper()
		resp, err := hc.Post(url+"/v1/key/create/"+name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := create("app-1"); code != http.StatusForbidden {
		t.Fatalf("before reload: %d, want 403", code)
	}

	withPolicy := memConfig(t, admin.Identity(), second)
	withPolicy.Addr = "127.0.0.1:1" // ignored: the listener stays
	withPolicy.Policies = map[string]auth.PolicyConfig{
		"app": {Allow: []string{"/v1/key/create/app-*"}, Identities: []kes.Identity{app.Identity()}},
	}
	next <- func() (*Config, error) { return withPolicy, nil }
	reload <- struct{}{}
	if got := waitStarted(t, started); got.Addr != c.Addr {
		t.Fatalf("reloaded address %q, want %q", got.Addr, c.Addr)
	}
	if code := create("app-2"); code != http.StatusOK {
		t.Fatalf("after reload: %d, want 200", code)
	}
	if _, err := second.Get(t.Context(), "app-2"); err != nil {
		t.Fatalf("key not stored through the reloaded key store: %v", err)
	}

	next <- func() (*Config, error) { return nil, os.ErrNotExist }
	reload <- struct{}{}
	next <- func() (*Config, error) { return nil, os.ErrNotExist }
	reload <- struct{}{} // accepted only once the first reload is done
	if code := create("app-x"); code != http.StatusOK {
		t.Fatalf("after a failed reload: %d, want 200 (the running policy)", code)
	}
}

// TestReloadWithoutConfig: a server without ReadConfig keeps running
// when asked to reload.
func TestReloadWithoutConfig(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	reload := make(chan struct{})
	url, _ := start(t, &Server{Reload: reload}, memConfig(t, admin.Identity(), new(mem.Store)))
	reload <- struct{}{}
	reload <- struct{}{} // taken once the first reload has failed
	resp, err := client(t, &admin).Get(url + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status after a reload without config: %d", resp.StatusCode)
	}
}

// TestReloadSkipAuthVersion: skip_auth on /version (a route that checks no
// policy anyway) must not change the TLS client-auth mode, neither at start
// nor after a reload. The reload once decided on its own and made client
// certificates optional until the 15-minute TLS re-read required them again.
func TestReloadSkipAuthVersion(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	config := func() *Config {
		c := memConfig(t, admin.Identity(), new(mem.Store))
		c.Routes = map[string]api.RouteConfig{"/version": {SkipAuth: true}}
		return c
	}
	reload := make(chan struct{})
	s := &Server{Reload: reload, ReadConfig: func() (*Config, error) { return config(), nil }}
	url, started := start(t, s, config())

	// A client without a certificate: the handshake must fail, as every
	// route that checks a policy is still private.
	anonymous := func(when string) {
		t.Helper()
		resp, err := client(t, nil).Get(url + "/version")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: a client without a certificate got %s, want a failed TLS handshake", when, resp.Status)
		}
	}
	anonymous("at start")
	reload <- struct{}{}
	waitStarted(t, started)
	anonymous("after reload")
}

// TestStopEndsStreamsAndSummarizes: stopping the server ends the open log
// streams at once (Shutdown would otherwise wait ShutdownGrace for them
// and then cut them), and the audit log reports the denied requests whose
// lines were left out before the server exits.
func TestStopEndsStreamsAndSummarizes(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	intruder, _ := kes.GenerateAPIKey(nil)
	c := memConfig(t, admin.Identity(), new(mem.Store))
	addrs := make(chan net.Addr, 1)
	stdout := new(lockedBuffer)
	s := &Server{
		Stdout: stdout, Stderr: io.Discard,
		LookupEnv: func(string) (string, bool) { return "", false },
		Started:   func(_ *Config, addr net.Addr) { addrs <- addr },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c) }()
	var url string
	select {
	case addr := <-addrs:
		url = "https://" + addr.String()
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	var streams []io.ReadCloser
	for _, path := range []string{"/v1/log/audit", "/v1/log/error"} {
		resp, err := client(t, &admin).Get(url + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		defer resp.Body.Close()
		streams = append(streams, resp.Body)
	}
	denied := client(t, &intruder)
	const requests = 30
	for range requests {
		resp, err := denied.Get(url + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("intruder: %d, want 403", resp.StatusCode)
		}
	}

	stopped := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(stopped); d >= ShutdownGrace {
		t.Errorf("stopping took %v with open log streams, want less than ShutdownGrace (%v)", d, ShutdownGrace)
	}
	for i, body := range streams {
		if _, err := io.ReadAll(body); err != nil {
			t.Errorf("stream %d did not end cleanly: %v", i, err)
		}
	}
	out := stdout.String()
	if n := strings.Count(out, "res.code=403"); n != 21 {
		t.Errorf("%d audit lines of denied requests, want 20 and one summary:\n%s", n, grepLines(out, "res.code=403"))
	}
	if !regexp.MustCompile(`msg="denied requests suppressed" .* suppressed=10\n`).MatchString(out) {
		t.Errorf("no summary of the 10 lines left out:\n%s", grepLines(out, "suppressed"))
	}
}
