package api_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/proxytest"
)

// proxyPeer is a real TLS proxy the tests run in front of the server.
type proxyPeer struct {
	name  string
	start func(testing.TB, proxytest.Config) *proxytest.Proxy
	// plusAsSpace is the peer's header value with every '+' of the
	// certificate's base64 text turned into a space, as minio/kes#334
	// saw it; empty if the peer cannot produce one.
	plusAsSpace string
	// garbage is a header value that is no certificate.
	garbage string
}

var proxyPeers = []proxyPeer{
	{name: "nginx", start: proxytest.Nginx, garbage: "not-a-certificate"},
	// url_dec(1) decodes as a form does, turning '+' into ' '.
	{name: "haproxy", start: proxytest.HAProxy, plusAsSpace: "%[ssl_c_der,base64,url_dec(1)]", garbage: "not-a-certificate"},
}

// startPeer starts p in front of f's server, with f's proxy certificate
// and the header value expression value (empty: the peer's usual one).
// clientCA is the file of roots the peer verifies clients with; empty
// means f's CA.
func (f *proxyFixture) startPeer(t *testing.T, p proxyPeer, value, clientCA string) *proxytest.Proxy {
	t.Helper()
	if clientCA == "" {
		clientCA = f.ca.File
	}
	return p.start(t, proxytest.Config{
		Upstream:   strings.TrimPrefix(f.ts.URL, "https://"),
		UpstreamCA: f.ca.File,
		Server:     f.ca.Issue(t, p.name+"-front", proxytest.ServerAuth),
		Client:     f.proxy,
		ClientCA:   clientCA,
		Header:     certHeader,
		Value:      value,
	})
}

// through sends a request to the peer as cert, from 127.0.0.2, so that
// the address the proxy saw differs from the proxy's own.
func (f *proxyFixture) through(t *testing.T, px *proxytest.Proxy, cert *proxytest.Cert, method, path string, header map[string][]string) response {
	t.Helper()
	c := f.client(t, cert, false, loopback2)
	r, err := sendErr(c, method, "https://"+px.Addr+path, header)
	if err != nil {
		t.Fatalf("%s %s through the proxy: %v\n%s", method, path, err, px.Logs())
	}
	return r
}

// TestProxyPeers runs the TLS-proxy mode behind a real nginx and a real
// HAProxy: each terminates the client's mTLS and connects with its own
// certificate, the listed proxy identity.
func TestProxyPeers(t *testing.T) {
	for _, p := range proxyPeers {
		t.Run(p.name, func(t *testing.T) {
			t.Run("forwarded", func(t *testing.T) { testPeerForwarded(t, p) })
			t.Run("not listed", func(t *testing.T) { testPeerNotListed(t, p) })
			t.Run("malformed", func(t *testing.T) { testPeerMalformed(t, p) })
			t.Run("verified", func(t *testing.T) { testPeerVerified(t, p) })
			if p.plusAsSpace != "" {
				t.Run("plus as space", func(t *testing.T) { testPeerPlusAsSpace(t, p) })
			}
		})
	}
}

// testPeerForwarded: the client's identity and policy, its address in the
// audit log, and what the client sends itself is not believed.
func testPeerForwarded(t *testing.T, p proxyPeer) {
	f := newProxyFixture(t, nil)
	px := f.startPeer(t, p, "", "")
	// The client sends a forged certificate header and address: the
	// proxy replaces the first and appends to the second.
	forged := map[string][]string{certHeader: {escaped(f.bob)}, "X-Forwarded-For": {"6.6.6.6"}}
	r := f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/alice-"+p.name, forged)
	expect(t, "alice creates her key", r, http.StatusOK, "")
	rec := f.nextAudit(t, "/v1/key/create/alice-"+p.name)
	if rec.Request.Identity != string(f.alice.Identity) || rec.Request.IP != "127.0.0.2" {
		t.Fatalf("audit: identity %s ip %s, want alice's and 127.0.0.2 (the client as the proxy saw it)", rec.Request.Identity, rec.Request.IP)
	}
	r = f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/bob-"+p.name, nil)
	expect(t, "alice creates bob's key", r, http.StatusForbidden, kes.ErrNotAllowed.Msg)
	r = f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/admin-"+p.name, nil)
	expect(t, "alice creates an admin's key", r, http.StatusForbidden, kes.ErrNotAllowed.Msg)
	r = f.through(t, px, f.bob, http.MethodPost, "/v1/key/create/bob-"+p.name, nil)
	expect(t, "bob creates his key", r, http.StatusOK, "")

	// The proxy carries both clients over its connections to the server
	// (nginx keepalive, HAProxy connection reuse): every request is its
	// own client's.
	for i := range 4 {
		for _, c := range []*proxytest.Cert{f.alice, f.bob} {
			if id := selfIdentity(t, f.through(t, px, c, http.MethodGet, "/v1/identity/self/describe", nil)); id != c.Identity {
				t.Fatalf("round %d: self-describe answered %s, want %s", i, id, c.Identity)
			}
		}
	}
}

// testPeerNotListed: a proxy whose identity is not listed sends the
// header as any client would: 403, and the error log names it.
func testPeerNotListed(t *testing.T, p proxyPeer) {
	f := newProxyFixture(t, func(o *serverOptions) { o.proxies = nil })
	px := f.startPeer(t, p, "", "")
	r := f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/alice-unlisted", nil)
	expect(t, "request through an unlisted proxy", r, http.StatusForbidden, auth.ErrNotProxy.Msg)
	rec := f.nextAudit(t, "/v1/key/create/alice-unlisted")
	if rec.Request.Identity != string(f.proxy.Identity) || rec.Request.IP != "127.0.0.1" {
		t.Fatalf("audit: %+v, want the proxy's identity and address", rec)
	}
	if logged := f.ts.Errors.String(); !strings.Contains(logged, "not a TLS proxy") || !strings.Contains(logged, string(f.proxy.Identity)) {
		t.Fatalf("error log does not name the unlisted proxy:\n%s", logged)
	}
}

// testPeerMalformed: a proxy configured to send something that is no
// certificate gets upstream's 400.
func testPeerMalformed(t *testing.T, p proxyPeer) {
	f := newProxyFixture(t, nil)
	px := f.startPeer(t, p, p.garbage, "")
	r := f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/alice-garbage", nil)
	expect(t, "garbage header", r, http.StatusBadRequest, auth.ErrProxyInvalidCert.Msg)
}

// testPeerVerified: with tls.auth on, the forwarded certificate verifies
// against the server's roots. The proxy trusts a second CA the server does
// not: its clients reach the proxy but not the keys.
func testPeerVerified(t *testing.T, p proxyPeer) {
	f := newProxyFixture(t, func(o *serverOptions) { o.verify = true })
	other := proxytest.NewCA(t)
	stranger := other.Issue(t, "stranger", proxytest.ClientAuth)
	both := filepath.Join(t.TempDir(), "both.crt")
	var pemBoth []byte
	for _, file := range []string{f.ca.File, other.File} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pemBoth = append(pemBoth, b...)
	}
	if err := os.WriteFile(both, pemBoth, 0o600); err != nil {
		t.Fatal(err)
	}
	px := f.startPeer(t, p, "", both)
	r := f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/alice-verified", nil)
	expect(t, "verified client", r, http.StatusOK, "")
	r = f.through(t, px, stranger, http.MethodPost, "/v1/key/create/alice-stranger", nil)
	expect(t, "client of a CA the server does not trust", r, http.StatusForbidden, auth.ErrProxyUntrusted.Msg)
}

// testPeerPlusAsSpace: minio/kes#334, a '+' of the base64 form that
// became a space on the way, is repaired. alice's base64 ends in a '+'
// (plusCert): the space HAProxy puts at the end of the value is trimmed
// on the way, and the server restores the '+' from the DER's length.
func testPeerPlusAsSpace(t *testing.T, p proxyPeer) {
	f := newProxyFixture(t, nil)
	px := f.startPeer(t, p, p.plusAsSpace, "")
	r := f.through(t, px, f.alice, http.MethodPost, "/v1/key/create/alice-plus", nil)
	expect(t, fmt.Sprintf("certificate through %s", p.plusAsSpace), r, http.StatusOK, "")
	if rec := f.nextAudit(t, "/v1/key/create/alice-plus"); rec.Request.Identity != string(f.alice.Identity) {
		t.Fatalf("audit identity %s, want alice's", rec.Request.Identity)
	}
}
