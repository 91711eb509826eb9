package main

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/openkes/kes"
)

// TestRateLimitFile: a policy's rate_limit in the configuration file is
// enforced, and SIGHUP applies a changed one (docs/rate-limits.md).
func TestRateLimitFile(t *testing.T) {
	dir, admin := newServerDir(t)
	app, _ := kes.GenerateAPIKey(nil)
	write := func(limit string) string {
		t.Helper()
		return writeFSServerConfig(t, dir, admin.Identity(), `policy:
  app:
    allow: [/v1/key/create/app-*]
    identities: [`+app.Identity().String()+`]
    rate_limit: `+limit+`
`)
	}
	file := write("{requests_per_second: 0.01, burst: 1}")
	reload := make(chan struct{})
	url, lines, c := startReloadServer(t, file, reload, app)
	n := 0
	create := func() (int, string) {
		t.Helper()
		n++
		resp, err := c.Post(url+"/v1/key/create/app-"+strconv.Itoa(n), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, _ := create(); code != http.StatusOK {
		t.Fatalf("first request: %d, want 200", code)
	}
	if code, retry := create(); code != http.StatusTooManyRequests || retry != "100" {
		t.Fatalf("second request: %d (Retry-After %q), want 429 (100)", code, retry)
	}

	write("off")
	reload <- struct{}{}
	waitFor(t, lines, regexp.MustCompile(`^=> Reloading configuration after SIGHUP signal completed\.$`))
	for range 3 {
		if code, _ := create(); code != http.StatusOK {
			t.Fatalf("after reloading rate_limit: off: %d, want 200", code)
		}
	}
}
