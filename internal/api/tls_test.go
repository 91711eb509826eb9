package api_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/vectors"
)

// TestTLS12CipherSuites: a TLS 1.2 client that offers only CBC suites with
// SHA-1 MACs fails the handshake; one offering an ECDHE AEAD suite connects
// with that suite.
func TestTLS12CipherSuites(t *testing.T) {
	ts := startServer(t, serverOptions{})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	cert := apiKeyCert(t, keys[0].APIKey)
	addr := strings.TrimPrefix(ts.URL, "https://")
	dial := func(suites ...uint16) (*tls.Conn, error) {
		return tls.Dial("tcp", addr, &tls.Config{
			RootCAs:      ts.CA,
			MinVersion:   tls.VersionTLS12,
			MaxVersion:   tls.VersionTLS12,
			CipherSuites: suites,
			Certificates: []tls.Certificate{*cert},
		})
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, // AEAD, but no forward secrecy
	} {
		if c, err := dial(suite); err == nil {
			c.Close()
			t.Errorf("handshake with only %s succeeded", tls.CipherSuiteName(suite))
		}
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		c, err := dial(suite)
		if err != nil {
			t.Errorf("%s: %v", tls.CipherSuiteName(suite), err)
			continue
		}
		if got := c.ConnectionState().CipherSuite; got != suite {
			t.Errorf("negotiated %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(suite))
		}
		c.Close()
	}
}
