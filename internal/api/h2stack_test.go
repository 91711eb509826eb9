package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/vectors"
)

// panickyKeys panics on a lookup of the key "boom", on the handler's
// goroutine.
type panickyKeys struct{ api.KeyStore }

func (k panickyKeys) Lookup(name string) (crypto.Key, bool) {
	if name == "boom" {
		panic("boom: a bug in the server")
	}
	return k.KeyStore.Lookup(name)
}

// TestHTTP2HandlerPanic: HTTP/2 requests run on the stack pool's workers
// (stackPool); a handler that panics there ends its own stream only, as
// net/http does for a handler on the stream's goroutine, and the server,
// the connection and the workers go on serving.
func TestHTTP2HandlerPanic(t *testing.T) {
	ts := startServer(t, serverOptions{keys: func(k api.KeyStore) api.KeyStore { return panickyKeys{k} }})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	c := ts.client(t, apiKeyCert(t, keys[0].APIKey), true)
	if r := do(t, c, "POST", ts.URL+"/v1/key/create/k", nil); r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	for i := range 3 {
		req, err := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/v1/key/describe/boom", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("describe of a key whose store panics: %d, want a reset stream", resp.StatusCode)
		}
		for range 20 { // more than the workers: the same connection, other streams
			if r := do(t, c, "POST", ts.URL+"/v1/key/generate/k", nil); r.Status != 200 {
				t.Fatalf("round %d: generate after a panic: %d %s", i, r.Status, r.Body)
			}
		}
	}
	ts.Stop()
	if !strings.Contains(ts.Errors.String(), "boom: a bug in the server") {
		t.Errorf("the panic is not on the error log:\n%s", ts.Errors.String())
	}
}
