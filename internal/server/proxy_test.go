package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/keystore/mem"
)

// TestProxyConfig: tls.proxy of the configuration is in force from the
// start and follows a reload.
func TestProxyConfig(t *testing.T) {
	admin, _ := kes.GenerateAPIKey(nil)
	proxy, _ := kes.GenerateAPIKey(nil)
	app, _ := kes.GenerateAPIKey(nil)
	appCert, err := kes.GenerateCertificate(app, nil)
	if err != nil {
		t.Fatal(err)
	}
	config := func(proxies ...kes.Identity) *Config {
		c := memConfig(t, admin.Identity(), new(mem.Store))
		c.TLS.ProxyIdentities, c.TLS.ProxyHeader = proxies, "X-Tls-Client-Cert"
		c.Policies = map[string]auth.PolicyConfig{
			"app": {Allow: []string{"/v1/identity/self/describe"}, Identities: []kes.Identity{app.Identity()}},
		}
		return c
	}
	next := make(chan *Config, 1)
	reload := make(chan struct{})
	s := &Server{Reload: reload, ReadConfig: func() (*Config, error) { return <-next, nil }}
	url, started := start(t, s, config(proxy.Identity()))

	hc := client(t, &proxy)
	describe := func() (int, kes.Identity) {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url+"/v1/identity/self/describe", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Tls-Client-Cert", base64.StdEncoding.EncodeToString(appCert.Leaf.Raw))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d kes.DescribeSelfResponse
		json.NewDecoder(resp.Body).Decode(&d)
		return resp.StatusCode, d.Identity
	}
	if code, id := describe(); code != http.StatusOK || id != app.Identity() {
		t.Fatalf("through the proxy: %d as %s, want 200 as the app", code, id)
	}
	next <- config() // the proxy is no longer listed
	reload <- struct{}{}
	waitStarted(t, started)
	if code, _ := describe(); code != auth.ErrNotProxy.Status {
		t.Fatalf("after the reload: %d, want %d", code, auth.ErrNotProxy.Status)
	}
}
