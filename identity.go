package kes

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net"
)

// Identity identifies a KES client: the lowercase hex SHA-256 of the
// DER-encoded SubjectPublicKeyInfo of its certificate. Subject, validity and
// extensions do not change it, so a re-issued certificate for the same key
// keeps its identity.
type Identity string

// IdentityOf returns the identity of cert.
func IdentityOf(cert *x509.Certificate) Identity {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return Identity(hex.EncodeToString(sum[:]))
}

// IsUnknown reports whether the identity is empty.
func (id Identity) IsUnknown() bool { return id == "" }

func (id Identity) String() string { return string(id) }

func parseIP(s string) []byte {
	ip := net.ParseIP(s)
	if ip == nil {
		return nil
	}
	return ip
}
