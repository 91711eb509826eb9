package auth

import (
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openkes/kes"
)

// Errors of the TLS-proxy mode (identity-and-auth.md §6). The 400 texts
// are upstream's; the 403s are OpenKES's own (upstream answered an
// unverified forwarded certificate with an empty message and ignored the
// header when a client that is not a proxy sent it).
var (
	// ErrProxyNoCert is returned when a TLS proxy forwards no client
	// certificate.
	ErrProxyNoCert = kes.NewError(http.StatusBadRequest, "no client certificate is present")
	// ErrProxyManyCerts is returned when a TLS proxy forwards more than
	// one client certificate: several header fields, several
	// comma-separated values, or a chain holding more than one
	// certificate that is not a CA.
	ErrProxyManyCerts = kes.NewError(http.StatusBadRequest, "too many client certificates are present")
	// ErrProxyInvalidCert is returned when the forwarded value is not a
	// certificate in one of the forms [ParseForwardedCert] accepts.
	ErrProxyInvalidCert = kes.NewError(http.StatusBadRequest, "invalid client certificate")
	// ErrProxyUntrusted is returned when the server verifies client
	// certificates (tls.auth: on) and the forwarded one does not verify.
	ErrProxyUntrusted = kes.NewError(http.StatusForbidden, "tls: the forwarded client certificate is not trusted")
	// ErrNotProxy is returned when a client that is not a configured TLS
	// proxy sends the header of forwarded client certificates.
	ErrNotProxy = kes.NewError(http.StatusForbidden, "tls: only a TLS proxy may forward a client certificate")
)

// Limits on a forwarded value, far above a real chain: a request can make
// the server parse at most this much per distinct header value.
const (
	maxForwardedLen   = 64 << 10
	maxForwardedCerts = 8
)

// ProxyConfig configures the TLS-proxy mode (config tls.proxy).
type ProxyConfig struct {
	// Identities are the identities of the TLS proxies in front of the
	// server. Empty means no client is a proxy.
	Identities []kes.Identity

	// Header is the name of the header that carries the forwarded client
	// certificate, in any case. Empty means no header: a proxy's requests
	// then fail with [ErrProxyNoCert], as upstream's did.
	Header string

	// Roots, if not nil, verify forwarded certificates, as the TLS layer
	// verifies clients with tls.auth: on. Nil means forwarded certificates
	// are not verified (tls.auth: off): the proxy vouches for them.
	Roots *x509.CertPool

	// Now returns the time for verification; nil means time.Now.
	Now func() time.Time
}

// Proxy decides which clients are TLS proxies and identifies the clients
// they forward. A nil *Proxy is valid: no client is a proxy and no header
// is checked. A Proxy is immutable and safe for concurrent use.
type Proxy struct {
	identities []kes.Identity
	header     string
	roots      *x509.CertPool
	now        func() time.Time
}

// NewProxy returns the Proxy of c, or nil if c names neither a proxy nor a
// header. It keeps no reference to c's slice.
func NewProxy(c ProxyConfig) *Proxy {
	ids := slices.DeleteFunc(slices.Clone(c.Identities), func(id kes.Identity) bool { return id == "" })
	if len(ids) == 0 && c.Header == "" {
		return nil
	}
	p := &Proxy{identities: ids, roots: c.Roots, now: c.Now}
	if c.Header != "" {
		p.header = textproto.CanonicalMIMEHeaderKey(c.Header)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// IsProxy reports whether id is the identity of a configured TLS proxy.
func (p *Proxy) IsProxy(id kes.Identity) bool {
	return p != nil && id != "" && slices.Contains(p.identities, id)
}

// Header returns the canonical name of the forwarded-certificate header,
// the key of its values in an http.Header, or "" if none is configured.
func (p *Proxy) Header() string {
	if p == nil {
		return ""
	}
	return p.header
}

// Forwarded is a client certificate that a TLS proxy forwarded and
// [Proxy.Identify] accepted.
type Forwarded struct {
	// Identity is the identity of the forwarded certificate.
	Identity kes.Identity

	// Expires is when the verification of the certificate stops being
	// valid: its NotAfter, if the proxy verifies certificates. Zero means
	// the answer does not change with time.
	Expires time.Time
}

// Identify returns the client a proxy forwarded in values, the values of
// the header fields named [Proxy.Header]. Exactly one certificate must be
// forwarded (see [ParseForwardedCert] for the forms); with Roots set it
// must verify for client authentication, with the rest of a forwarded
// chain as intermediates.
//
// The errors are [ErrProxyNoCert], [ErrProxyManyCerts],
// [ErrProxyInvalidCert], [ErrCAClientCert] (the forwarded certificate is a
// CA) and [ErrProxyUntrusted], all *kes.Error values.
func (p *Proxy) Identify(values []string) (Forwarded, error) {
	switch len(values) {
	case 0:
		return Forwarded{}, ErrProxyNoCert
	case 1:
	default:
		return Forwarded{}, ErrProxyManyCerts
	}
	certs, err := ParseForwardedCert(values[0])
	if err != nil {
		return Forwarded{}, err
	}
	id, err := IdentifyCertificate(certs[0])
	if err != nil {
		return Forwarded{}, err
	}
	if p == nil || p.roots == nil {
		return Forwarded{Identity: id}, nil
	}
	opts := x509.VerifyOptions{
		Roots:       p.roots,
		CurrentTime: p.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return Forwarded{}, ErrProxyUntrusted
	}
	return Forwarded{Identity: id, Expires: certs[0].NotAfter}, nil
}

// ParseForwardedCert parses the value of one forwarded-certificate header
// field. It accepts
//
//   - PEM, URL-escaped as nginx's $ssl_client_escaped_cert sends it
//     ("-----BEGIN%20CERTIFICATE-----%0AMII..."), or unescaped;
//   - base64 of the DER certificate, as HAProxy's %[ssl_c_der,base64]
//     sends it, also URL-escaped (Traefik);
//
// and repairs a '+' of the base64 text that became a space on the way (a
// form-style unescape, minio/kes#334): base64 and PEM bodies never hold
// spaces. A PEM value may hold a chain: the first certificate is the
// client's, the others must be CAs (intermediates for verification).
// Several comma-separated values, as a proxy that merges repeated header
// fields sends them, are several certificates.
//
// The errors are [ErrProxyNoCert] (empty value), [ErrProxyManyCerts],
// [ErrProxyInvalidCert] and [ErrCAClientCert] (the first certificate of a
// PEM chain is a CA; [Proxy.Identify] also refuses a lone CA). The slice
// has at least one certificate.
func ParseForwardedCert(value string) ([]*x509.Certificate, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, ErrProxyNoCert
	}
	if len(value) > maxForwardedLen {
		return nil, ErrProxyInvalidCert
	}
	if i := strings.IndexByte(value, ','); i >= 0 {
		if strings.TrimSpace(value[i+1:]) != "" || strings.TrimSpace(value[:i]) == "" {
			return nil, ErrProxyManyCerts
		}
		value = strings.TrimSpace(value[:i])
	}
	if strings.IndexByte(value, '%') >= 0 {
		// PathUnescape, unlike QueryUnescape, keeps '+' a '+'.
		v, err := url.PathUnescape(value)
		if err != nil {
			return nil, ErrProxyInvalidCert
		}
		value = strings.TrimSpace(v)
	}
	if !strings.HasPrefix(value, "-----BEGIN") {
		c, ok := parseBase64Cert(value)
		if !ok {
			return nil, ErrProxyInvalidCert
		}
		return []*x509.Certificate{c}, nil
	}
	return pemCerts(value)
}

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

// pemCerts returns the certificates of the CERTIFICATE blocks of s, which
// holds nothing else but white space. Every certificate after the first
// must be a CA. encoding/pem drops spaces inside a body instead of reading
// them as the '+' they may have been, hence this reader.
func pemCerts(s string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if len(certs) == maxForwardedCerts {
			return nil, ErrProxyManyCerts
		}
		rest, ok := strings.CutPrefix(s, pemBegin)
		if !ok {
			return nil, ErrProxyInvalidCert
		}
		body, after, ok := strings.Cut(rest, pemEnd)
		if !ok {
			return nil, ErrProxyInvalidCert
		}
		c, ok := parseBase64Cert(body)
		if !ok {
			return nil, ErrProxyInvalidCert
		}
		switch {
		case len(certs) == 0 && c.IsCA:
			return nil, ErrCAClientCert
		case len(certs) > 0 && !c.IsCA:
			return nil, ErrProxyManyCerts
		}
		certs = append(certs, c)
		s = after
	}
	return certs, nil
}

// parseBase64Cert parses the base64 text of a DER certificate (padding
// optional, line breaks and tabs ignored). A space is first read as a '+'
// that a form-style unescape turned into one; if that does not give a
// certificate, as a line break that a proxy flattened.
func parseBase64Cert(s string) (*x509.Certificate, bool) {
	if der, ok := decodeBase64(s, true); ok {
		if c, err := x509.ParseCertificate(der); err == nil {
			return c, true
		}
	}
	if !strings.Contains(s, " ") {
		return nil, false
	}
	der, ok := decodeBase64(s, false)
	if !ok {
		return nil, false
	}
	c, err := x509.ParseCertificate(der)
	return c, err == nil
}

// decodeBase64 decodes standard base64 (padding optional), ignoring line
// breaks and tabs; a space is read as '+' if plus, else ignored.
//
// With plus, it also restores the '+' characters that ended the text:
// turned into spaces, they were trimmed with the white space around the
// header value (HTTP drops it), and base64 text is otherwise never short
// by less than four characters. The DER's own length octets say how long
// the text was: if it is one to three characters short of that, the
// missing characters are '+', the only ones that can vanish so. A missing
// '+' is only possible at the end (DER base64 begins with 'M', the
// SEQUENCE tag) and only when the DER length is a multiple of 3 (else the
// text ends in '=' padding, and the character before it cannot be '+').
func decodeBase64(s string, plus bool) ([]byte, bool) {
	s = strings.TrimSpace(s)
	clean := make([]byte, 0, len(s)+3)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n', '\t':
		case ' ':
			if plus {
				clean = append(clean, '+')
			}
		default:
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		return nil, false
	}
	if plus {
		clean = restoreTrailingPlus(clean)
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	der := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(der, clean)
	if err != nil {
		return nil, false
	}
	return der[:n], true
}

// restoreTrailingPlus returns b, the unpadded base64 text of a DER value,
// with the one to three '+' characters that its DER length octets say are
// missing at its end appended (see decodeBase64); any other b unchanged.
// A text short by four or more characters is not repaired: it is
// indistinguishable from one cut short by a whole quantum.
func restoreTrailingPlus(b []byte) []byte {
	if len(b)%4 == 0 || len(b) < 8 || slices.Contains(b, '=') {
		return b
	}
	var head [6]byte
	if _, err := base64.StdEncoding.Decode(head[:], b[:8]); err != nil {
		return b
	}
	n := derLen(head[:])
	if n <= 0 || n%3 != 0 {
		return b
	}
	missing := n/3*4 - len(b)
	if missing < 1 || missing > 3 {
		return b
	}
	return append(b, "+++"[:missing]...)
}

// derLen returns the length of the DER SEQUENCE that b begins with, its
// tag and length octets included, from those octets; -1 if b does not
// begin with a SEQUENCE of definite length below 16 MiB.
func derLen(b []byte) int {
	if len(b) < 2 || b[0] != 0x30 {
		return -1
	}
	if b[1] < 0x80 {
		return 2 + int(b[1])
	}
	k := int(b[1] & 0x7f)
	if k == 0 || k > 3 || len(b) < 2+k {
		return -1
	}
	n := 0
	for _, c := range b[2 : 2+k] {
		n = n<<8 | int(c)
	}
	return 2 + k + n
}

// ForwardedIP returns the client address a TLS proxy reports in the values
// of X-Forwarded-For: the last element of the last field, the address the
// proxy itself saw. Elements before it were sent by the client (a proxy
// appends to what it received) and prove nothing. An element may carry a
// port ("10.0.0.5:1234", "[::1]:1234"). It reports false for a missing,
// "unknown" or malformed element.
//
// Upstream took the first element, which a client can set at will.
func ForwardedIP(values []string) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "unknown") {
		return netip.Addr{}, false
	}
	if ip, err := netip.ParseAddr(v); err == nil {
		return ip.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
