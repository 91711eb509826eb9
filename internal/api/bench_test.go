package api

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openkes/kes"
)

// BenchmarkHandler measures what the server adds per request on top of
// net/http and TLS: routing, identity, policy, cache, crypto, JSON, metrics
// and audit, called in-process without a network. The "bare" case is a
// handler that reads the body and writes a fixed reply, as the load tool's
// bare server does. cpu-ns/op is the process CPU time per request (all
// threads), which ns/op of a parallel benchmark hides.
func BenchmarkHandler(b *testing.B) {
	apiKey, _ := kes.GenerateAPIKey(nil)
	srv := newBenchServer(b, apiKey.Identity(), nil, nil)
	conn := newBenchClient(b, apiKey)
	genBody, decBody := conn.benchKey(b, srv)

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
		// As HTTP/2 serves requests: each on a new goroutine, which hands
		// it to the stack pool; "nopool" serves it on that goroutine.
		{"decrypt-goroutine", "/v1/key/decrypt/bench", decBody, perGoroutine{srv}},
		{"decrypt-goroutine-nopool", "/v1/key/decrypt/bench", decBody, perGoroutine{srv}},
	} {
		stacks := srv.stacks
		if strings.HasSuffix(bb.name, "-nopool") {
			srv.stacks = nil
		}
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPUTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rec := conn.send(bb.h, "POST", bb.path, bb.body); rec.Code != 200 {
						b.Fatal(rec.Body.String())
					}
				}
			})
			b.ReportMetric(float64(processCPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
		srv.stacks = stacks
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
