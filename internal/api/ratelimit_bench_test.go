package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
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
	"github.com/openkes/kes/internal/ratelimit"
)

// BenchmarkRateLimit measures what a rate limit costs on the hot path:
// generate and decrypt of an identity assigned to a policy, in-process as
// BenchmarkHandler, without limits and with a limit so generous that it
// never refuses (every request takes a token from the identity's bucket).
// "serial" is the CPU time of one request; "parallel" runs every core on
// the same identity, the worst case for the bucket's lock.
func BenchmarkRateLimit(b *testing.B) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	cert, _ := kes.GenerateCertificate(app, nil)
	start := time.Now()
	keys := cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	defer keys.Close()
	authorizer, err := auth.New(admin.Identity(), map[string]auth.PolicyConfig{
		"app": {Allow: []string{"/v1/key/*"}, Identities: []kes.Identity{app.Identity()}},
	}, start)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(start)
	srv, err := New(&Config{
		Keys: keys, Auth: authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, nil, m.ErrorEvent), AuditLog: log.NewAuditLog(io.Discard, nil, m.AuditEvent),
		Metrics: m,
	})
	if err != nil {
		b.Fatal(err)
	}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	ctx := ConnContext(context.Background(), server)
	send := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, "POST", path, strings.NewReader(body))
		req.TLS = state
		req.ProtoMajor = 2
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := send("/v1/key/create/bench", ""); rec.Code != 200 {
		b.Fatal(rec.Body.String())
	}
	ctxB64 := base64.StdEncoding.EncodeToString([]byte(`{"MinIO object":"bucket/prefix/object.bin"}`))
	genBody := `{"context":"` + ctxB64 + `"}`
	var dek struct{ Ciphertext string }
	_ = json.Unmarshal(send("/v1/key/generate/bench", genBody).Body.Bytes(), &dek)
	decBody := `{"ciphertext":"` + dek.Ciphertext + `","context":"` + ctxB64 + `"}`

	generous := &ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 1e9, Burst: 1e9}}}
	for _, route := range []struct{ name, path, body string }{
		{"generate", "/v1/key/generate/bench", genBody},
		{"decrypt", "/v1/key/decrypt/bench", decBody},
	} {
		for _, limits := range []struct {
			name string
			c    *ratelimit.Config
		}{{"none", nil}, {"generous", generous}} {
			srv.SetRateLimits(limits.c)
			b.Run(route.name+"/"+limits.name+"/serial", func(b *testing.B) {
				b.ReportAllocs()
				cpu := processCPUTime(b)
				for b.Loop() {
					if rec := send(route.path, route.body); rec.Code != 200 {
						b.Fatal(rec.Body.String())
					}
				}
				// The machine may be shared: CPU time is steadier than
				// wall time.
				b.ReportMetric(float64(processCPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
			})
			b.Run(route.name+"/"+limits.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if rec := send(route.path, route.body); rec.Code != 200 {
							b.Fatal(rec.Body.String())
						}
					}
				})
			})
		}
	}
}

// processCPUTime returns the user and system CPU time of the process.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRateLimitCheck measures the rate-limit step alone, for an
// identity of a policy whose generous limit lets every request through:
// what BenchmarkRateLimit's "generous" adds to each request.
func BenchmarkRateLimitCheck(b *testing.B) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	authorizer, err := auth.New(admin.Identity(), map[string]auth.PolicyConfig{
		"app": {Allow: []string{"/v1/key/*"}, Identities: []kes.Identity{app.Identity()}},
	}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(time.Now())
	srv, err := New(&Config{
		Keys: cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{}), Auth: authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, nil, m.ErrorEvent), AuditLog: log.NewAuditLog(io.Discard, nil, m.AuditEvent),
		Metrics: m,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.SetRateLimits(&ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 1e9, Burst: 1e9}}})
	r := &request{Request: httptest.NewRequest("POST", "/v1/key/decrypt/k", nil), state: srv.state.Load(), start: time.Now()}
	w := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	id := app.Identity()
	b.ReportAllocs()
	cpu := processCPUTime(b)
	for b.Loop() {
		if srv.rateLimited(w, r, id) {
			b.Fatal("limited")
		}
	}
	b.ReportMetric(float64(processCPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
