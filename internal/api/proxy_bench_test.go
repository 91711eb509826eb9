package api

import (
	"crypto/tls"
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// BenchmarkProxyIdentity measures what identifying a request costs: a
// direct client (the connection's cached identity), a proxy forwarding the
// same client as its previous request, a proxy alternating between two
// clients (both in the per-connection cache) and one cycling through more
// clients than the cache holds (a parse per request).
func BenchmarkProxyIdentity(b *testing.B) {
	srv := newBenchServer(b, "admin", nil, nil)
	cert := func() *tls.Certificate {
		key, _ := kes.GenerateAPIKey(nil)
		c, _ := kes.GenerateCertificate(key, nil)
		return &c
	}
	proxyCert, alice, bob := cert(), cert(), cert()
	many := make([]string, forwardCacheSize+1)
	escape := func(c *tls.Certificate) string {
		pemText := "-----BEGIN CERTIFICATE-----\n" + encodeLines(c.Leaf.Raw) + "-----END CERTIFICATE-----\n"
		return strings.ReplaceAll(url.QueryEscape(pemText), "+", "%20")
	}
	for i := range many {
		many[i] = escape(cert())
	}
	srv.SetProxy(auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{kes.IdentityOf(proxyCert.Leaf)}, Header: "X-Tls-Client-Cert"}))

	for _, bc := range []struct {
		name   string
		conn   *tls.Certificate
		values []string
	}{
		{"direct", alice, nil},
		{"proxy-same-client", proxyCert, []string{escape(alice)}},
		{"proxy-alternating", proxyCert, []string{escape(alice), escape(bob)}},
		{"proxy-uncached", proxyCert, many},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conn := newBenchConn(b, bc.conn.Leaf)
			reqs := make([]*request, max(1, len(bc.values)))
			for i := range reqs {
				req := httptest.NewRequestWithContext(conn.ctx, "GET", "/v1/identity/self/describe", nil)
				req.TLS = conn.state
				if len(bc.values) > 0 {
					req.Header["X-Tls-Client-Cert"] = []string{bc.values[i]}
				}
				reqs[i] = &request{Request: req}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := srv.identify(reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// encodeLines is the base64 body of a PEM block.
func encodeLines(der []byte) string {
	var b strings.Builder
	s := base64.StdEncoding.EncodeToString(der)
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return b.String() + s + "\n"
}
