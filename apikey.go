package kes

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"time"
)

// APIKey is a KES API key: an Ed25519 private key in the text form
// "kes:v1:" + base64(0x00 || seed). A client turns it into a self-signed
// certificate ([GenerateCertificate]); the server only ever sees that
// certificate, so API keys work with servers that do not verify client
// certificate chains.
//
// APIKey redacts itself when formatted with %v; use [APIKey.Secret] for the
// text form.
type APIKey struct {
	key ed25519.PrivateKey
}

const apiKeyPrefix = "kes:v1:"

// Errors returned by [ParseAPIKey].
var (
	ErrAPIKeyLength = errors.New("invalid API key: invalid length")
	ErrAPIKeyType   = errors.New("invalid API key: unsupported type")
)

// ParseAPIKey parses an API key. The "kes:v1:" prefix is optional.
func ParseAPIKey(s string) (APIKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, apiKeyPrefix))
	if err != nil {
		return APIKey{}, errors.New("invalid API key: " + err.Error())
	}
	if len(b) != 1+ed25519.SeedSize {
		return APIKey{}, ErrAPIKeyLength
	}
	if b[0] != 0 {
		return APIKey{}, ErrAPIKeyType
	}
	return APIKey{key: ed25519.NewKeyFromSeed(b[1:])}, nil
}

// GenerateAPIKey returns a new random API key read from random, or from
// crypto/rand if random is nil.
func GenerateAPIKey(random io.Reader) (APIKey, error) {
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return APIKey{}, err
	}
	return APIKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// APIKeyFromPrivateKey returns the API key of an Ed25519 private key.
func APIKeyFromPrivateKey(key ed25519.PrivateKey) (APIKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return APIKey{}, ErrAPIKeyLength
	}
	return APIKey{key: ed25519.NewKeyFromSeed(key.Seed())}, nil
}

// Secret returns the text form of the key, "kes:v1:...". It is a secret.
func (k APIKey) Secret() string {
	return apiKeyPrefix + base64.StdEncoding.EncodeToString(append([]byte{0}, k.key.Seed()...))
}

// String redacts the key.
func (k APIKey) String() string { return "kes:v1:<redacted>" }

// GoString is String, so that %#v does not print the private key bytes.
func (k APIKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer; it logs the redacted form.
func (k APIKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Public returns the Ed25519 public key.
func (k APIKey) Public() crypto.PublicKey { return k.key.Public() }

// Private returns the Ed25519 private key.
func (k APIKey) Private() ed25519.PrivateKey { return k.key }

// Identity returns the identity of the certificates derived from the key.
func (k APIKey) Identity() Identity {
	spki, err := x509.MarshalPKIXPublicKey(k.key.Public())
	if err != nil { // cannot happen for a valid Ed25519 key
		return ""
	}
	sum := sha256.Sum256(spki)
	return Identity(hex.EncodeToString(sum[:]))
}

// Equal reports whether k and other are the same key, in constant time.
func (k APIKey) Equal(other APIKey) bool { return k.key.Equal(other.key) }

// CertificateOptions customises [GenerateCertificate]. The zero value makes
// a client certificate valid for 90 days with CN = identity.
type CertificateOptions struct {
	Subject  string        // common name; empty means the key's identity
	Validity time.Duration // zero means 90 days
	Server   bool          // add the serverAuth extended key usage
	IPs      []string      // IP SANs
	DNSNames []string      // DNS SANs
	Now      func() time.Time
	Rand     io.Reader
}

// GenerateCertificate returns a self-signed X.509 certificate for the API
// key, as KES clients present it to servers.
func GenerateCertificate(key APIKey, opts *CertificateOptions) (tls.Certificate, error) {
	if opts == nil {
		opts = &CertificateOptions{}
	}
	random, now := opts.Rand, time.Now
	if random == nil {
		random = rand.Reader
	}
	if opts.Now != nil {
		now = opts.Now
	}
	validity := opts.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	subject := opts.Subject
	if subject == "" {
		subject = key.Identity().String()
	}
	serial, err := rand.Int(random, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	start := now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             start,
		NotAfter:              start.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              opts.DNSNames,
	}
	if opts.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	for _, s := range opts.IPs {
		ip := parseIP(s)
		if ip == nil {
			return tls.Certificate{}, errors.New("kes: invalid IP address '" + s + "'")
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(random, tmpl, tmpl, key.key.Public(), key.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key.key, Leaf: leaf}, nil
}
