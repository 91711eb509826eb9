package auth

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/openkes/kes"
)

// IdentifyTLS returns the identity of the client of a TLS connection
// (spec identity-and-auth.md §1): certificates whose Basic Constraints mark
// them as a CA are dropped, and exactly one certificate must remain.
//
// It returns [kes.ErrInsecureConnection] if state is nil (no TLS),
// [kes.ErrNoClientCert] if no non-CA certificate was sent and
// [kes.ErrManyClientCerts] if more than one was. The chain is not verified
// here: that is the TLS layer's job when client verification is on.
//
// The server calls IdentifyTLS once per connection and caches the result.
// Its only allocations are those of the hex identity string.
func IdentifyTLS(state *tls.ConnectionState) (kes.Identity, error) {
	if state == nil {
		return "", kes.ErrInsecureConnection
	}
	var leaf *x509.Certificate
	for _, cert := range state.PeerCertificates {
		if cert == nil || cert.IsCA {
			continue
		}
		if leaf != nil {
			return "", kes.ErrManyClientCerts
		}
		leaf = cert
	}
	if leaf == nil {
		return "", kes.ErrNoClientCert
	}
	return kes.IdentityOf(leaf), nil
}
