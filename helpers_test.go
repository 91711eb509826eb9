package kes_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// testKey is the API key of every test client; its identity is
// a050837d85070582ccf7394b0988847cc312cb88259b894899f6f239cf1791a5.
var testKey = mustAPIKey("kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")

func mustAPIKey(s string) kes.APIKey {
	k, err := kes.ParseAPIKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

// newTLSServer starts an HTTPS server with HTTP/2 that requires (but does
// not verify) a client certificate, as a KES server does by default.
func newTLSServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// sleeps records the backoff delays of a client instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newTestClient returns a client of srvs that authenticates with testKey
// and records its backoff delays instead of sleeping.
func newTestClient(t testing.TB, srvs ...*httptest.Server) (*kes.Client, *sleeps) {
	t.Helper()
	pool := x509.NewCertPool()
	var endpoints []string
	for _, s := range srvs {
		pool.AddCert(s.Certificate())
		endpoints = append(endpoints, s.URL)
	}
	c, err := kes.NewClient(endpoints, kes.WithAPIKey(testKey), kes.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &sleeps{}
	kes.SetSleep(c, s.sleep)
	return c, s
}

// recorded is one request as a fake server saw it.
type recorded struct {
	Method, Path, Body, ContentType string
	Identity                        kes.Identity
	Proto                           int
}

// recorder is a handler that records requests and answers with a fixed
// response.
type recorder struct {
	mu          sync.Mutex
	reqs        []recorded
	status      int
	contentType string
	body        string
}

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), Body: string(body), ContentType: r.Header.Get("Content-Type"), Proto: r.ProtoMajor}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rec.Identity = kes.IdentityOf(r.TLS.PeerCertificates[0])
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, rec)
	status, ct, respBody := h.status, h.contentType, h.body
	h.mu.Unlock()
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, respBody)
}

func (h *recorder) requests() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

// jsonEqual reports whether a and b hold equal JSON values.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("invalid JSON %q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// setStatus changes the status of the recorder's later responses.
func (h *recorder) setStatus(status int) {
	h.mu.Lock()
	h.status = status
	h.mu.Unlock()
}
