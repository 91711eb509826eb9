package auth_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/proxytest"
)

// nginxEscape escapes like nginx's $ssl_client_escaped_cert: every byte
// but unreserved ones is %XX, so '+' is %2B and a space %20.
func nginxEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// plusCert returns a client certificate whose base64 DER holds a '+' (most
// do; the test must not depend on luck).
func plusCert(t *testing.T, ca *proxytest.CA) *proxytest.Cert {
	t.Helper()
	for range 50 {
		c := ca.Issue(t, "client", proxytest.ClientAuth)
		if strings.Contains(base64.StdEncoding.EncodeToString(c.Leaf.Raw), "+") {
			return c
		}
	}
	t.Fatal("no certificate with a '+' in its base64 form in 50 tries")
	return nil
}

func TestParseForwardedCertForms(t *testing.T) {
	ca := proxytest.NewCA(t)
	client := plusCert(t, ca)
	b64 := base64.StdEncoding.EncodeToString(client.Leaf.Raw)
	pemText := string(client.PEM)
	for _, tc := range []struct{ name, value string }{
		{"nginx escaped PEM", nginxEscape(pemText)},
		{"HAProxy base64 DER", b64},
		// minio/kes#334: a form-style unescape (or HAProxy's
		// url_dec(1)) turned every '+' of the base64 text into a space.
		{"base64 DER, + became space", strings.ReplaceAll(b64, "+", " ")},
		{"escaped PEM, + became space", nginxEscape(strings.ReplaceAll(pemText, "+", " "))},
		{"PEM escaped without +", strings.ReplaceAll(nginxEscape(pemText), "%2B", "+")},
		{"PEM with line breaks flattened to spaces", strings.ReplaceAll(pemText, "\n", " ")},
		{"base64 DER without padding", strings.TrimRight(b64, "=")},
		{"URL-escaped base64 DER (Traefik)", url.QueryEscape(b64)},
		{"surrounding spaces", "  " + b64 + " "},
		{"one value and an empty one, merged", b64 + ", "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := auth.ParseForwardedCert(tc.value)
			if err != nil {
				t.Fatalf("ParseForwardedCert(%q): %v", tc.value, err)
			}
			if len(certs) != 1 || kes.IdentityOf(certs[0]) != client.Identity {
				t.Fatalf("got %d certificates, want the client's", len(certs))
			}
		})
	}
}

// TestForwardedChain pins how several forwarded certificates are handled
// (minio/kes#149): a chain [client, CA, ...] in one value is the client,
// with the CAs as intermediates; two client certificates, in one value or
// in two header fields, are refused as upstream refuses them; a CA first
// is refused as on a direct connection.
func TestForwardedChain(t *testing.T) {
	ca := proxytest.NewCA(t)
	inter := ca.Issue(t, "intermediate", proxytest.IsCA)
	client := ca.Issue(t, "client", proxytest.ClientAuth)
	other := ca.Issue(t, "other", proxytest.ClientAuth)
	join := func(certs ...*proxytest.Cert) string {
		var b strings.Builder
		for _, c := range certs {
			b.Write(c.PEM)
		}
		return nginxEscape(b.String())
	}
	p := auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{"p"}, Header: "x-tls-client-cert"})
	for _, tc := range []struct {
		name   string
		values []string
		want   kes.Identity
		err    error
	}{
		{"leaf and CA", []string{join(client, inter)}, client.Identity, nil},
		{"two leaves in one value", []string{join(client, other)}, "", auth.ErrProxyManyCerts},
		{"two header fields", []string{join(client), join(other)}, "", auth.ErrProxyManyCerts},
		{"two comma-separated values", []string{join(client) + "," + join(other)}, "", auth.ErrProxyManyCerts},
		{"CA first", []string{join(inter, client)}, "", auth.ErrCAClientCert},
		{"no field", nil, "", auth.ErrProxyNoCert},
		{"empty field", []string{" "}, "", auth.ErrProxyNoCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd, err := p.Identify(tc.values)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Identify: error %v, want %v", err, tc.err)
			}
			if fwd.Identity != tc.want {
				t.Fatalf("Identify: identity %q, want %q", fwd.Identity, tc.want)
			}
		})
	}
}

func TestParseForwardedCertErrors(t *testing.T) {
	ca := proxytest.NewCA(t)
	inter := ca.Issue(t, "intermediate", proxytest.IsCA)
	client := ca.Issue(t, "client", proxytest.ClientAuth)
	b64 := base64.StdEncoding.EncodeToString(client.Leaf.Raw)
	for _, tc := range []struct {
		name, value string
		err         *kes.Error
	}{
		{"garbage", "not a certificate", auth.ErrProxyInvalidCert},
		{"bad escape", "-----BEGIN%ZZ", auth.ErrProxyInvalidCert},
		{"truncated base64", b64[:len(b64)/2], auth.ErrProxyInvalidCert},
		{"key block", nginxEscape("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"), auth.ErrProxyInvalidCert},
		{"no end line", nginxEscape(strings.TrimSuffix(string(client.PEM), "-----END CERTIFICATE-----\n")), auth.ErrProxyInvalidCert},
		{"text after the block", nginxEscape(string(client.PEM) + "trailer"), auth.ErrProxyInvalidCert},
		{"too long", strings.Repeat("A", 70<<10), auth.ErrProxyInvalidCert},
		{"too many CAs", nginxEscape(string(client.PEM) + strings.Repeat(string(inter.PEM), 8)), auth.ErrProxyManyCerts},
		{"leading comma", "," + b64, auth.ErrProxyManyCerts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := auth.ParseForwardedCert(tc.value); !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
		})
	}
}

// TestForwardedVerify: with tls.auth on, the forwarded certificate must
// verify for client authentication against the server's roots, with the
// rest of a forwarded chain as intermediates. Upstream used Go's default
// options, which demand the serverAuth usage: OpenKES demands clientAuth,
// as the TLS layer does for direct clients.
func TestForwardedVerify(t *testing.T) {
	ca := proxytest.NewCA(t)
	otherCA := proxytest.NewCA(t)
	client := ca.Issue(t, "client", proxytest.ClientAuth)
	serverOnly := ca.Issue(t, "server-only", proxytest.ServerAuth)
	stranger := otherCA.Issue(t, "stranger", proxytest.ClientAuth)
	expiry := time.Now().Add(time.Hour)
	expiring := ca.IssueUntil(t, "expiring", proxytest.ClientAuth, expiry)

	now := time.Now()
	p := auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{"p"}, Header: "X", Roots: ca.Pool, Now: func() time.Time { return now }})
	b64 := func(c *proxytest.Cert) []string { return []string{base64.StdEncoding.EncodeToString(c.Leaf.Raw)} }

	fwd, err := p.Identify(b64(client))
	if err != nil || fwd.Identity != client.Identity || !fwd.Expires.Equal(client.Leaf.NotAfter) {
		t.Fatalf("trusted client: %+v, %v", fwd, err)
	}
	for name, c := range map[string]*proxytest.Cert{"other CA": stranger, "server usage only": serverOnly} {
		if _, err := p.Identify(b64(c)); !errors.Is(err, auth.ErrProxyUntrusted) {
			t.Errorf("%s: error %v, want %v", name, err, auth.ErrProxyUntrusted)
		}
	}
	if _, err := p.Identify(b64(expiring)); err != nil {
		t.Fatalf("certificate before expiry: %v", err)
	}
	now = expiry.Add(time.Minute)
	if _, err := p.Identify(b64(expiring)); !errors.Is(err, auth.ErrProxyUntrusted) {
		t.Fatalf("expired certificate: error %v, want %v", err, auth.ErrProxyUntrusted)
	}

	// A client of an intermediate CA the server does not know forwards
	// its chain.
	now = time.Now()
	inter := ca.Issue(t, "intermediate", proxytest.IsCA)
	leaf := inter.AsCA(t).Issue(t, "leaf-of-intermediate", proxytest.ClientAuth)
	value := nginxEscape(string(leaf.PEM) + string(inter.PEM))
	if fwd, err := p.Identify([]string{value}); err != nil || fwd.Identity != leaf.Identity {
		t.Fatalf("chain through an intermediate: %+v, %v", fwd, err)
	}
	if _, err := p.Identify([]string{nginxEscape(string(leaf.PEM))}); !errors.Is(err, auth.ErrProxyUntrusted) {
		t.Fatalf("leaf without its intermediate: error %v, want %v", err, auth.ErrProxyUntrusted)
	}

	// Without roots (tls.auth off) the proxy vouches for the client.
	open := auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{"p"}, Header: "X"})
	if fwd, err := open.Identify(b64(stranger)); err != nil || fwd.Identity != stranger.Identity || !fwd.Expires.IsZero() {
		t.Fatalf("without verification: %+v, %v", fwd, err)
	}
}

func TestNewProxy(t *testing.T) {
	if p := auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{""}}); p != nil {
		t.Fatalf("NewProxy of an empty config = %+v, want nil", p)
	}
	var none *auth.Proxy
	if none.IsProxy("a") || none.Header() != "" {
		t.Fatal("a nil Proxy names a proxy or a header")
	}
	ids := []kes.Identity{"a", "b"}
	p := auth.NewProxy(auth.ProxyConfig{Identities: ids, Header: "x-tls-client-cert"})
	ids[0] = "changed"
	if !p.IsProxy("a") || !p.IsProxy("b") || p.IsProxy("c") || p.IsProxy("") || p.IsProxy("changed") {
		t.Fatal("IsProxy does not answer for exactly the configured identities")
	}
	if p.Header() != "X-Tls-Client-Cert" {
		t.Fatalf("Header = %q, want the canonical form", p.Header())
	}
}

func TestForwardedIP(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string // "" = none
	}{
		{nil, ""},
		{[]string{"10.0.0.5"}, "10.0.0.5"},
		{[]string{"10.0.0.5:1234"}, "10.0.0.5"},
		{[]string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{[]string{"2001:db8::1"}, "2001:db8::1"},
		{[]string{"::ffff:10.0.0.7"}, "10.0.0.7"},
		// The proxy appends what it saw: what the client sent comes first
		// and is not believed.
		{[]string{"6.6.6.6, 10.0.0.5"}, "10.0.0.5"},
		{[]string{"6.6.6.6", "10.0.0.5"}, "10.0.0.5"},
		{[]string{"unknown"}, ""},
		{[]string{"10.0.0.5, unknown"}, ""},
		{[]string{"not-an-ip"}, ""},
		{[]string{""}, ""},
	} {
		got, ok := auth.ForwardedIP(tc.values)
		if tc.want == "" {
			if ok {
				t.Errorf("ForwardedIP(%q) = %v, want none", tc.values, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("ForwardedIP(%q) = %v, %v; want %s", tc.values, got, ok, tc.want)
		}
	}
}

// plusAsSpace is what arrives of s when every '+' became a space on the
// way (minio/kes#334) and HTTP trimmed the white space around the header
// value.
func plusAsSpace(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "+", " "))
}

// TestTrailingPlusAsSpace: a '+' that ended the base64 text became a
// space that HTTP trimmed (the flaky TestProxyPeers/haproxy/plus_as_space:
// one certificate in about 190, those whose DER length is a multiple of 3
// and whose last base64 character is '+'). The DER length octets say how
// many characters are missing; up to three are restored, four are not.
func TestTrailingPlusAsSpace(t *testing.T) {
	ca := proxytest.NewCA(t)
	b64 := func(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
	// A certificate signed by ca whose base64 text holds a '+' and ends
	// in one: the header value HAProxy's url_dec(1) sends ends in a space.
	signed := ca.IssueWhere(t, "client", proxytest.ClientAuth, func(der []byte) bool {
		s := b64(der)
		return strings.HasSuffix(s, "+") && strings.Contains(s[:len(s)-1], "+")
	})
	if v := strings.ReplaceAll(b64(signed.Leaf.Raw), "+", " "); !strings.HasSuffix(v, " ") || strings.TrimSpace(v) == v {
		t.Fatal("the certificate's plus-as-space form does not end in a space")
	}

	// Longer runs of '+' at the end are rarer than one certificate in
	// 10,000: the last bytes (the signature, which parsing does not check)
	// are set so that the text ends in 1-4 '+'.
	long := ca.IssueWhere(t, "long", proxytest.ClientAuth, func(der []byte) bool {
		return len(der)%3 == 0 && strings.Contains(b64(der), "+")
	})
	ending := func(tail string) []byte {
		der := append([]byte{}, long.Leaf.Raw...)
		last, err := base64.StdEncoding.DecodeString(tail)
		if err != nil {
			t.Fatal(err)
		}
		copy(der[len(der)-len(last):], last)
		if !strings.HasSuffix(b64(der), strings.TrimLeft(tail, "AQ")) {
			t.Fatalf("%q does not end the text", tail)
		}
		return der
	}
	pemOf := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	for _, tc := range []struct {
		name string
		der  []byte
		ok   bool
	}{
		{"signed, ends in +", signed.Leaf.Raw, true},
		{"ends in +", ending("AAA+"), true},
		{"ends in ++", ending("AA++"), true},
		{"ends in +++", ending("Q+++"), true},
		// Four missing characters are a whole quantum: the text is as
		// short as one cut by three bytes. Refused, as documented.
		{"ends in ++++", ending("++++"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := kes.IdentityOf(mustParse(t, tc.der))
			for form, value := range map[string]string{
				"base64 DER":               plusAsSpace(b64(tc.der)),
				"base64 DER, no padding":   plusAsSpace(strings.TrimRight(b64(tc.der), "=")),
				"URL-escaped base64 DER":   nginxEscape(plusAsSpace(b64(tc.der))),
				"PEM, + became space":      nginxEscape(strings.ReplaceAll(pemOf(tc.der), "+", " ")),
				"flattened PEM, + trimmed": plusAsSpace(strings.ReplaceAll(pemOf(tc.der), "\n", "")),
			} {
				certs, err := auth.ParseForwardedCert(value)
				switch {
				case !tc.ok && !errors.Is(err, auth.ErrProxyInvalidCert):
					t.Errorf("%s: error %v, want %v", form, err, auth.ErrProxyInvalidCert)
				case tc.ok && err != nil:
					t.Errorf("%s: %q: %v", form, value, err)
				case tc.ok && kes.IdentityOf(certs[0]) != want:
					t.Errorf("%s: identity %s, want %s", form, kes.IdentityOf(certs[0]), want)
				}
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
