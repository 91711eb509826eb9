package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/log"
)

// TestReloadKeepsAuditSinks: the audit sinks are set up at start; a reload
// that names another audit file keeps writing to the first (the server
// warns that the change needs a restart), and every request's event is in
// it once the server has stopped.
func TestReloadKeepsAuditSinks(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")
	// Registered before start's cleanup, so it runs after the server
	// has stopped.
	t.Cleanup(func() {
		data, err := os.ReadFile(first)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"before", "after"} {
			if n := strings.Count(string(data), `"path":"/v1/key/create/`+key+`"`); n != 1 {
				t.Errorf("%d events of creating %s in the audit file, want 1:\n%s", n, key, data)
			}
		}
		if _, err := os.Stat(second); !os.IsNotExist(err) {
			t.Errorf("the reload opened the new audit file: %v", err)
		}
	})
	c := memConfig(t, admin.Identity(), new(mem.Store))
	c.AuditFile = &log.FileConfig{Path: first}
	c.AuditStdoutOff = true
	next := *c
	next.AuditFile = &log.FileConfig{Path: second}
	reload := make(chan struct{})
	s := &Server{Reload: reload, ReadConfig: func() (*Config, error) { return &next, nil }}
	url, started := start(t, s, c)

	hc := client(t, &admin)
	create := func(name string) {
		t.Helper()
		resp, err := hc.Post(url+"/v1/key/create/"+name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("create %s: %d", name, resp.StatusCode)
		}
	}
	create("before")
	reload <- struct{}{}
	waitStarted(t, started)
	create("after")
}
