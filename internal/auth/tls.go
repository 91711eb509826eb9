package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/openkes/kes"
)

// ErrCAClientCert is returned when the first certificate a client sent is
// marked as a CA (Basic Constraints CA:TRUE). OpenKES refuses such a
// client instead of looking for a non-CA certificate further down the list,
// as upstream does: see [IdentifyTLS].
var ErrCAClientCert = kes.NewError(http.StatusBadRequest, "tls: the client certificate is a CA certificate")

// IdentifyTLS returns the identity of the client of a TLS connection: the
// identity of the first certificate the client sent (with a verified chain,
// the leaf of that chain, which the TLS layer takes from the same place).
//
// The TLS handshake proves that the client holds the private key of the
// first certificate only. Upstream KES drops every CA-flagged certificate
// and hashes the one left (spec identity-and-auth.md §1), so a client that
// sends [own CA:TRUE certificate, victim's certificate] is taken for the
// victim. OpenKES therefore never looks past the first certificate for the
// identity, and refuses a first certificate marked as a CA.
//
// It returns [kes.ErrInsecureConnection] if state is nil (no TLS),
// [kes.ErrNoClientCert] if no certificate was sent, [ErrCAClientCert] if
// the first one is a CA, and [kes.ErrManyClientCerts] if more than one
// non-CA certificate was sent (as upstream; a chain of the usual form
// [leaf, intermediate CA, ...] is accepted). The chain is not verified here:
// that is the TLS layer's job when client verification is on.
//
// The server calls IdentifyTLS once per connection and caches the result.
// Its only allocations are those of the hex identity string.
func IdentifyTLS(state *tls.ConnectionState) (kes.Identity, error) {
	if state == nil {
		return "", kes.ErrInsecureConnection
	}
	certs := state.PeerCertificates
	if len(state.VerifiedChains) > 0 && len(state.VerifiedChains[0]) > 0 {
		// The verified chain starts with PeerCertificates[0]; its other
		// certificates come from the roots and the client's
		// intermediates, and are not the client's.
		certs = state.VerifiedChains[0][:1]
	}
	if len(certs) == 0 {
		return "", kes.ErrNoClientCert
	}
	id, err := IdentifyCertificate(certs[0])
	if err != nil {
		return "", err
	}
	for i, cert := range state.PeerCertificates {
		if i > 0 && cert != nil && !cert.IsCA {
			return "", kes.ErrManyClientCerts
		}
	}
	return id, nil
}

// IdentifyCertificate returns the identity of a client that proved
// possession of cert's private key, such as the first certificate of a TLS
// handshake or a certificate a trusted TLS proxy forwards. It returns
// [kes.ErrNoClientCert] for nil and [ErrCAClientCert] for a certificate
// marked as a CA.
func IdentifyCertificate(cert *x509.Certificate) (kes.Identity, error) {
	if cert == nil {
		return "", kes.ErrNoClientCert
	}
	if cert.IsCA {
		return "", ErrCAClientCert
	}
	return kes.IdentityOf(cert), nil
}
