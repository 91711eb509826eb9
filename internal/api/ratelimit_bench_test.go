package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/ratelimit"
)

// appPolicy is the policy "app" of the rate-limit benchmarks: every key
// route, for the identity app.
func appPolicy(app kes.Identity) map[string]auth.PolicyConfig {
	return map[string]auth.PolicyConfig{"app": {Allow: []string{"/v1/key/*"}, Identities: []kes.Identity{app}}}
}

// generousLimit limits the policy "app" so generously that it never
// refuses.
func generousLimit() *ratelimit.Config {
	return &ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 1e9, Burst: 1e9}}}
}

// BenchmarkRateLimit measures what a rate limit costs on the hot path:
// generate and decrypt of an identity assigned to a policy, in-process as
// BenchmarkHandler, without limits and with a limit so generous that it
// never refuses (every request takes a token from the identity's bucket).
// "serial" is the CPU time of one request; "parallel" runs every core on
// the same identity, the worst case for the bucket's lock.
func BenchmarkRateLimit(b *testing.B) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	srv := newBenchServer(b, admin.Identity(), appPolicy(app.Identity()), nil)
	conn := newBenchClient(b, app)
	genBody, decBody := conn.benchKey(b, srv)

	generous := generousLimit()
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
					if rec := conn.send(srv, "POST", route.path, route.body); rec.Code != 200 {
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
						if rec := conn.send(srv, "POST", route.path, route.body); rec.Code != 200 {
							b.Fatal(rec.Body.String())
						}
					}
				})
			})
		}
	}
}

// BenchmarkRateLimitCheck measures the rate-limit step alone, for an
// identity of a policy whose generous limit lets every request through:
// what BenchmarkRateLimit's "generous" adds to each request.
func BenchmarkRateLimitCheck(b *testing.B) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	srv := newBenchServer(b, admin.Identity(), appPolicy(app.Identity()), nil)
	srv.SetRateLimits(generousLimit())
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
