package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/ratelimit"
)

// TestReloadRateLimits: a reload applies new rate limits to the next
// request, and the buckets keep what they hold.
func TestReloadRateLimits(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	store := new(mem.Store)
	config := func(limits ratelimit.Config) *Config {
		c := memConfig(t, admin.Identity(), store)
		c.Policies = map[string]auth.PolicyConfig{
			"app": {Allow: []string{"/v1/key/create/app-*"}, Identities: []kes.Identity{app.Identity()}},
		}
		c.RateLimits = limits
		return c
	}
	slow := &ratelimit.Limit{PerSecond: 0.01, Burst: 2} // a token every 100 s
	next := make(chan *Config, 1)
	reload := make(chan struct{})
	s := &Server{Reload: reload, ReadConfig: func() (*Config, error) { return <-next, nil }}
	url, started := start(t, s, config(ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": slow}}))

	hc := client(t, &app)
	n := 0
	statuses := func(count int) (string, string) {
		t.Helper()
		var got []string
		var retry string
		for range count {
			n++
			resp, err := hc.Post(url+"/v1/key/create/app-"+strings.Repeat("x", n), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got = append(got, http.StatusText(resp.StatusCode))
			retry = resp.Header.Get("Retry-After")
		}
		return strings.Join(got, ", "), retry
	}
	apply := func(limits ratelimit.Config) {
		t.Helper()
		next <- config(limits)
		reload <- struct{}{}
		waitStarted(t, started)
	}

	if got, retry := statuses(3); got != "OK, OK, Too Many Requests" || retry != "100" {
		t.Fatalf("burst 2, 0.01/s: %s (Retry-After %q), want OK, OK, Too Many Requests (100)", got, retry)
	}
	// A fast limit. A bucket takes a new limit at its identity's next
	// request: that request finds what the old rate refilled (nothing
	// much), and from then on the bucket refills at a million a second.
	apply(ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 1e6, Burst: 100}}})
	if got, _ := statuses(10); got != "Too Many Requests"+strings.Repeat(", OK", 9) {
		t.Fatalf("after reloading a fast limit: %s, want one Too Many Requests, then OK", got)
	}
	// The policy's limit is gone: the default applies, and its burst of 1
	// caps what the bucket holds.
	apply(ratelimit.Config{Default: &ratelimit.Limit{PerSecond: 0.01, Burst: 1}})
	if got, _ := statuses(2); got != "OK, Too Many Requests" {
		t.Fatalf("after reloading the default limit: %s, want OK, Too Many Requests", got)
	}
	// No limits at all.
	apply(ratelimit.Config{})
	if got, _ := statuses(5); strings.Contains(got, "Too Many") {
		t.Fatalf("after reloading without limits: %s", got)
	}
}
