package api_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/vectors"
)

// TestLogStreamReload: after a reload that replaces the admin, the old
// admin's open audit stream ends, while the stream of an identity whose
// policy still allows the route keeps receiving events.
func TestLogStreamReload(t *testing.T) {
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	watcherID, watcherCert := newAPIKey(t)
	newAdminID, newAdminCert := newAPIKey(t)
	policies := map[string]auth.PolicyConfig{
		"watch": {Allow: []string{"/v1/log/audit"}, Identities: []kes.Identity{watcherID}},
	}
	for _, h2 := range []bool{false, true} {
		ts := startServer(t, serverOptions{policies: policies})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		open := func(c *http.Client) *bufio.Scanner {
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/log/audit", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			if resp.StatusCode != 200 {
				t.Fatalf("h2=%v: audit stream: %d", h2, resp.StatusCode)
			}
			return bufio.NewScanner(resp.Body)
		}
		oldAdmin := open(ts.client(t, apiKeyCert(t, keys[0].APIKey), h2))
		watcher := open(ts.client(t, watcherCert, h2))

		authorizer, err := auth.New(newAdminID, policies, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ts.Server.Update(ts.Keys, authorizer, nil, api.Deletion{})

		// The stream ends cleanly (EOF, no error): not by the deadline.
		if oldAdmin.Scan() || oldAdmin.Err() != nil {
			t.Errorf("h2=%v: the replaced admin's stream: %q, %v", h2, oldAdmin.Bytes(), oldAdmin.Err())
		}
		r := do(t, ts.client(t, newAdminCert, h2), "PUT", ts.URL+"/v1/key/create/after-reload", nil)
		if r.Status != 200 {
			t.Fatalf("h2=%v: new admin create: %d %s", h2, r.Status, r.Body)
		}
		if !watcher.Scan() || !strings.Contains(watcher.Text(), "/v1/key/create/after-reload") {
			t.Errorf("h2=%v: watcher stream: %q %v", h2, watcher.Text(), watcher.Err())
		}
	}
}
