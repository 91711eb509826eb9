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

// BenchmarkHandler measures what the server adds per request on top of
// net/http and TLS: routing, identity, policy, cache, crypto, JSON, metrics
// and audit, called in-process without a network. The "bare" case is a
// handler that reads the body and writes a fixed reply, as the load tool's
// bare server does.
func BenchmarkHandler(b *testing.B) {
	apiKey, _ := kes.GenerateAPIKey(nil)
	cert, _ := kes.GenerateCertificate(apiKey, nil)
	start := time.Now()
	keys := cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	defer keys.Close()
	authorizer, _ := auth.New(apiKey.Identity(), nil, start)
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
	send := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
		req.TLS = state
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := send("PUT", "/v1/key/create/bench", ""); rec.Code != 200 {
		b.Fatal(rec.Body.String())
	}
	ctxB64 := base64.StdEncoding.EncodeToString([]byte(`{"MinIO object":"bucket/prefix/object.bin"}`))
	genBody := `{"context":"` + ctxB64 + `"}`
	rec := send("POST", "/v1/key/generate/bench", genBody)
	var dek struct{ Ciphertext string }
	_ = json.Unmarshal(rec.Body.Bytes(), &dek)
	decBody := `{"ciphertext":"` + dek.Ciphertext + `","context":"` + ctxB64 + `"}`

	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"plaintext":"YpSOWxI8OqZd1KzAH2TnTGXhvqlAcVyIvHi/pYvrkDA="}` + "\n"))
	})
	for _, bb := range []struct {
		name, path, body string
		h                http.Handler
	}{
		{"bare", "/v1/key/decrypt/bench", decBody, bare},
		{"generate", "/v1/key/generate/bench", genBody, srv},
		{"decrypt", "/v1/key/decrypt/bench", decBody, srv},
		// As HTTP/2 serves requests: each on a new goroutine.
		{"decrypt-goroutine", "/v1/key/decrypt/bench", decBody, perGoroutine{srv}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequestWithContext(ctx, "POST", bb.path, strings.NewReader(bb.body))
					req.TLS = state
					req.ProtoMajor = 2
					rec := httptest.NewRecorder()
					bb.h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatal(rec.Body.String())
					}
				}
			})
		})
	}
}

// perGoroutine serves each request on a new goroutine, as HTTP/2 does, so
// that stack growth shows in the profile.
type perGoroutine struct{ h http.Handler }

func (p perGoroutine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.h.ServeHTTP(w, r)
	}()
	<-done
}
