package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
	"github.com/openkes/kes/internal/proxytest"
)

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// snapshotDir returns the names and contents of the files in dir.
func snapshotDir(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

// The identities of the vectors' server configuration (vectors README).
const vectorsAdmin = "538973a3f617c8b166cbae1eeed53e121c8bebde136db0c67ab664a0110c8d5d"

var vectorsProbePolicy = auth.PolicyConfig{
	Allow: []string{"/v1/key/create/vec-probe-*", "/v1/key/delete/vec-probe-*", "/v1/key/describe/vec-probe-*"},
	Deny:  []string{"/v1/key/create/vec-probe-denied*"},
	Identities: []kes.Identity{
		"2bd948d5849994c576282da8e8c435d443ca160e3e8ed9895c84004e743abae3",
		"0970ec9a7901ff1d683265a27ce418d6990beb8c8711ed3ff0ae45a2d25c4b2f",
		"4db0aa59ce97df71e42a240719242ea818641516d28d2a19df0963f5380b284f",
		"e209bb13b678c4a7463ec389bf039714bc778efe09d54ef1d259ae6045448527",
		"cb8e69d31b26ab95c43aeda2cfa375817e8ea111dcf472eb72cc1e0fe4bdeec1",
		"015a9cd70d0cf226ca9bcdecba837a3d52e8d843a9ee9571c70cdb03f776c93f",
		"aeb84fdc4ed6fc04eb3895b603f8da0d8fc1a0cd429dac1a66c3f12bdfe93f06",
	},
}

// testServer is a real OpenKES server on a loopback port, with mTLS.
type testServer struct {
	URL      string
	Dir      string // the fs keystore directory
	CA       *x509.CertPool
	Audit    *syncBuffer
	Errors   *syncBuffer
	Metrics  *metrics.Metrics
	AuditLog *log.AuditLog
	ErrorLog *log.ErrorLog
	Stop     func() // stops the server; called again at cleanup, it does nothing
	Server   *api.Server
	Keys     api.KeyStore
}

type serverOptions struct {
	keystoreDir string // copied; empty: an empty directory
	sharedDir   string // used as it is, e.g. another server's directory
	admin       kes.Identity
	policies    map[string]auth.PolicyConfig
	routes      map[string]api.RouteConfig
	verify      bool   // tls.auth: on
	caPath      string // extra client roots
	store       func(dir string) keystore.Store
	keys        func(api.KeyStore) api.KeyStore // wraps the key cache; nil: none
	// cert, if set, is the server's certificate; CA its roots.
	cert *proxytest.Cert
	ca   *proxytest.CA
	// proxies and proxyHeader are tls.proxy.identities and
	// tls.proxy.header.cert.
	proxies     []kes.Identity
	proxyHeader string
	// deletion is the server's key deletion; now its clock (nil: time.Now).
	deletion api.Deletion
	now      func() time.Time
}

// startServer starts a server as `kes server` does, on 127.0.0.1:0.
func startServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	dir := t.TempDir()
	switch {
	case opts.sharedDir != "":
		dir = opts.sharedDir
	case opts.keystoreDir != "":
		dir = copyDir(t, opts.keystoreDir)
	}
	var store keystore.Store
	if opts.store != nil {
		store = opts.store(dir)
	} else {
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		store = s
	}
	if opts.admin == "" {
		opts.admin = vectorsAdmin
	}
	start := time.Now()
	keys := cache.New(store, func(_ string, b []byte) (crypto.Key, error) { return crypto.ParseKey(b) }, cache.Config{})
	t.Cleanup(func() { keys.Close() })
	authorizer, err := auth.New(opts.admin, opts.policies, start)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Dir: dir, Audit: new(syncBuffer), Errors: new(syncBuffer)}
	ts.Metrics = metrics.New(start)
	ts.ErrorLog = log.NewErrorLog(ts.Errors, slogLevel(-4), ts.Metrics.ErrorEvent)
	ts.AuditLog = log.NewAuditLog(ts.Audit, slogLevel(0), ts.Metrics.AuditEvent)
	t.Cleanup(func() { ts.AuditLog.Close(); ts.ErrorLog.Close() }) // after Stop
	ts.Metrics.CountLogs(metrics.LogCounters{
		AuditSuppressed: ts.AuditLog.Suppressed,
		AuditDropped:    ts.AuditLog.Dropped,
		ErrorDropped:    ts.ErrorLog.Dropped,
	})
	var served api.KeyStore = keys
	if opts.keys != nil {
		served = opts.keys(keys)
	}
	srv, err := api.New(&api.Config{
		Keys:      served,
		Auth:      authorizer,
		ErrorLog:  ts.ErrorLog,
		AuditLog:  ts.AuditLog,
		Metrics:   ts.Metrics,
		Routes:    opts.routes,
		StartTime: start,
		Deletion:  opts.deletion,
		Now:       opts.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Server, ts.Keys = srv, keys
	var certFile, keyFile string
	if opts.cert != nil {
		certFile, keyFile, ts.CA = opts.cert.CertFile, opts.cert.KeyFile, opts.ca.Pool
	} else {
		certFile, keyFile, ts.CA = serverCertificate(t)
	}
	tc := &api.TLSConfig{
		CertFile: certFile, KeyFile: keyFile, VerifyClients: opts.verify, CAPath: opts.caPath,
		ProxyIdentities: opts.proxies, ProxyHeader: opts.proxyHeader,
	}
	tlsConf, err := api.NewTLSConfig(tc, api.SkipAuth(opts.routes))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := api.NewProxy(tc)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetProxy(proxy)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(ln.Addr().String(), tlsConf)
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.ServeTLS(ln, "", "")
	}()
	ts.Stop = sync.OnceFunc(func() {
		hs.Close()
		<-done
	})
	t.Cleanup(func() { // after Stop: no handler writes any more
		checkNoSecrets(t, "error log", ts.Errors.String())
		checkNoSecrets(t, "audit log", ts.Audit.String())
	})
	t.Cleanup(ts.Stop)
	ts.URL = "https://" + ln.Addr().String()
	return ts
}

// serverCertificate writes a fresh server certificate for 127.0.0.1 and
// returns the pool of its CA.
func serverCertificate(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := proxytest.NewCA(t)
	c := ca.Issue(t, "localhost", proxytest.ServerAuth)
	return c.CertFile, c.KeyFile, ca.Pool
}

// client returns an HTTP client presenting the given certificates (none
// for nil). h2 selects HTTP/2, else HTTP/1.1.
func (ts *testServer) client(t testing.TB, cert *tls.Certificate, h2 bool) *http.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: ts.CA, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c := *cert
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// apiKeyCert returns the client certificate of an API key.
func apiKeyCert(t testing.TB, s string) *tls.Certificate {
	t.Helper()
	key, err := kes.ParseAPIKey(s)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kes.GenerateCertificate(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

// fileCert loads identities/<name>.crt and .key; every certificate of the
// file is sent (chain-leaf-ca sends leaf + CA).
func fileCert(t testing.TB, name string) *tls.Certificate {
	t.Helper()
	dir := filepath.Join(vectors.Dir(t), "identities")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request and reads the whole response.
func do(t testing.TB, c *http.Client, method, url string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 400 {
		checkNoSecrets(t, "error body", string(b))
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// errorMessage returns the message of a JSON error body.
func errorMessage(t testing.TB, r response) string {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return e.Message
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func slogLevel(l int) slog.Level { return slog.Level(l) }
