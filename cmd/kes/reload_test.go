package main

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/openkes/kes"
)

// TestReload: SIGHUP applies a changed policy from the configuration file
// without a restart; a broken file leaves the running configuration in
// place (spec config.md §10). The reload itself is tested in
// internal/server; this is the command's file re-read.
func TestReload(t *testing.T) {
	dir, admin := newServerDir(t)
	app, _ := kes.GenerateAPIKey(nil)
	write := func(extra string) string {
		t.Helper()
		return writeFSServerConfig(t, dir, admin.Identity(), extra)
	}
	file := write("")
	reload := make(chan struct{})
	url, lines, c := startReloadServer(t, file, reload, app)
	create := func(name string) int {
		t.Helper()
		resp, err := c.Post(url+"/v1/key/create/"+name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := create("app-1"); code != http.StatusForbidden {
		t.Fatalf("before reload: %d, want 403", code)
	}

	policy := `policy:
  app:
    allow: [/v1/key/create/app-*]
    identities: [` + app.Identity().String() + `]
`
	write(policy)
	reload <- struct{}{}
	waitFor(t, lines, regexp.MustCompile(`^=> Reloading configuration after SIGHUP signal completed\.$`))
	if code := create("app-2"); code != http.StatusOK {
		t.Fatalf("after reload: %d, want 200", code)
	}

	write("tls:\n  auth: maybe\n") // invalid: the running configuration stays
	reload <- struct{}{}
	reload <- struct{}{} // accepted only once the first reload is done
	if code := create("app-x"); code != http.StatusOK {
		t.Fatalf("after a failed reload: %d, want 200 (the running policy)", code)
	}
	write(policy + "cache:\n  expiry:\n    any: 1m\n")
	reload <- struct{}{}
	waitFor(t, lines, regexp.MustCompile(`^=> Reloading configuration after SIGHUP signal completed\.$`))
	if code := create("app-3"); code != http.StatusOK {
		t.Fatalf("after a failed and a good reload: %d, want 200", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "app-3")); err != nil {
		t.Fatalf("key not stored through the reloaded key store: %v", err)
	}
}

// startReloadServer runs `kes server --config file` in-process with reload
// as its SIGHUP until the test ends, and returns the server's URL once it
// is up, its stdout lines from then on and an HTTP client with a
// certificate of client. The server's stderr is logged if the test fails.
func startReloadServer(t *testing.T, file string, reload <-chan struct{}, client kes.APIKey) (url string, lines <-chan string, c *http.Client) {
	t.Helper()
	lines, stderr := startCmdReload(t, reload, "server", "--config", file)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(stderr)
		}
	})
	url = waitFor(t, lines, apiLine)[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))
	cert, err := kes.GenerateCertificate(client, nil)
	if err != nil {
		t.Fatal(err)
	}
	c = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(c.CloseIdleConnections)
	return url, lines, c
}
