package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
)

// The benchmarks' harness: a server handled in-process, without network,
// TLS or HTTP framing, so that what is measured is what the server adds.

// newBenchServer returns a server on an in-memory key store (closed when b
// ends) with admin and policies, whose error and audit logs discard what
// they get. set, if not nil, changes the configuration before New (other
// logs or metrics).
func newBenchServer(b *testing.B, admin kes.Identity, policies map[string]auth.PolicyConfig, set func(*Config)) *Server {
	b.Helper()
	start := time.Now()
	keys := cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	b.Cleanup(func() { keys.Close() })
	authorizer, err := auth.New(admin, policies, start)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(start)
	cfg := &Config{
		Keys: keys, Auth: authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, nil, m.ErrorEvent), AuditLog: log.NewAuditLog(io.Discard, nil, m.AuditEvent),
		Metrics: m,
	}
	if set != nil {
		set(cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

// benchConn is one client connection of a benchmark: the context that
// ConnContext gives a connection (one end of a net.Pipe, closed when b
// ends) and a TLS state whose peer is the client's certificate.
type benchConn struct {
	ctx   context.Context
	state *tls.ConnectionState
}

func newBenchConn(b *testing.B, cert *x509.Certificate) *benchConn {
	client, server := net.Pipe()
	b.Cleanup(func() { client.Close(); server.Close() })
	return &benchConn{
		ctx:   ConnContext(context.Background(), server),
		state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}},
	}
}

// newBenchClient returns a connection whose client has a certificate of
// key.
func newBenchClient(b *testing.B, key kes.APIKey) *benchConn {
	cert, err := kes.GenerateCertificate(key, nil)
	if err != nil {
		b.Fatal(err)
	}
	return newBenchConn(b, cert.Leaf)
}

// send serves an HTTP/2 request (as MinIO sends them) of c by h and
// returns the response.
func (c *benchConn) send(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(c.ctx, method, path, strings.NewReader(body))
	req.TLS = c.state
	req.ProtoMajor = 2
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// benchKey creates the key "bench" through h and returns the bodies of a
// generate request for it and of a decrypt request of the data key that
// one generate returned, both with the same context.
func (c *benchConn) benchKey(b *testing.B, h http.Handler) (genBody, decBody string) {
	b.Helper()
	if rec := c.send(h, "POST", "/v1/key/create/bench", ""); rec.Code != 200 {
		b.Fatal(rec.Body.String())
	}
	ctxB64 := base64.StdEncoding.EncodeToString([]byte(`{"MinIO object":"bucket/prefix/object.bin"}`))
	genBody = `{"context":"` + ctxB64 + `"}`
	rec := c.send(h, "POST", "/v1/key/generate/bench", genBody)
	var dek struct{ Ciphertext string }
	if err := json.Unmarshal(rec.Body.Bytes(), &dek); err != nil {
		b.Fatalf("generate: %v: %s", err, rec.Body)
	}
	return genBody, `{"ciphertext":"` + dek.Ciphertext + `","context":"` + ctxB64 + `"}`
}

// processCPUTime returns the user and system CPU time of the process: on
// a shared machine it is steadier than wall time.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
