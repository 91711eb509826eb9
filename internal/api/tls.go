package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"

	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openkes/kes"
)

// TLSConfig holds the server's TLS files and client-authentication mode.
type TLSConfig struct {
	CertFile string // PEM certificates, leaf first
	KeyFile  string // PEM private key; may also hold certificates
	Password string // decrypts a legacy encrypted PEM key; a secret
	// VerifyClients verifies client certificate chains (tls.auth: on).
	// False requires a certificate but does not verify it, which API keys
	// (self-signed certificates) rely on.
	VerifyClients bool
	CAPath        string // file or directory of extra roots for clients

	// ProxyIdentities and ProxyHeader are the TLS-proxy mode (tls.proxy,
	// see [NewProxy]). Empty means no proxy and no header.
	ProxyIdentities []kes.Identity
	ProxyHeader     string
}

// NewTLSConfig returns the server's tls.Config: TLS 1.2 or newer, HTTP/2
// and HTTP/1.1, and the client-auth mode of identity-and-auth.md §3. With
// skipAuth (some route is public) certificates are requested instead of
// required.
func NewTLSConfig(c *TLSConfig, skipAuth bool) (*tls.Config, error) {
	cert, err := LoadCertificate(c.CertFile, c.KeyFile, c.Password)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{cert},
	}
	switch {
	case c.VerifyClients && skipAuth:
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	case c.VerifyClients:
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	case skipAuth:
		conf.ClientAuth = tls.RequestClientCert
	default:
		conf.ClientAuth = tls.RequireAnyClientCert
	}
	if c.CAPath != "" {
		pool, err := LoadCertPool(c.CAPath)
		if err != nil {
			return nil, err
		}
		conf.ClientCAs = pool
		conf.RootCAs = pool
	}
	return conf, nil
}

// cipherSuites returns the TLS 1.2 cipher suites the server accepts: ECDHE
// with AES-GCM or ChaCha20-Poly1305 only, as upstream pinned them until
// 2023-10 (identity-and-auth.md §3). Go's defaults also accept CBC suites
// with SHA-1 MACs and RSA key exchange. TLS 1.3 suites are all AEAD and not
// configurable.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// LoadCertificate loads a certificate chain and its private key. The leaf
// must name at least one DNS name or IP address.
func LoadCertificate(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: read private key: %w", err)
	}
	defer clear(keyPEM)
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return tls.Certificate{}, fmt.Errorf("tls: %s: unexpected PEM block '%s': only certificates are allowed", certFile, b.Type)
		}
	}
	keyPEM, err = privateKeyPEM(keyFile, keyPEM, password)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	if len(cert.Leaf.DNSNames) == 0 && len(cert.Leaf.IPAddresses) == 0 {
		return tls.Certificate{}, fmt.Errorf("tls: %s: the certificate has no DNS or IP subject alternative name", certFile)
	}
	return cert, nil
}

// privateKeyPEM returns the first private key block of data, decrypted with
// password if it is a legacy encrypted PEM block.
func privateKeyPEM(file string, data []byte, password string) ([]byte, error) {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, fmt.Errorf("tls: %s: no private key found", file)
		}
		if b.Type != "PRIVATE KEY" && !strings.HasSuffix(b.Type, " PRIVATE KEY") {
			continue
		}
		//lint:ignore SA1019 legacy encrypted PEM keys are part of the KES config format (tls.password)
		if !x509.IsEncryptedPEMBlock(b) {
			return pem.EncodeToMemory(b), nil
		}
		if password == "" {
			return nil, fmt.Errorf("tls: %s: the private key is encrypted but no password is configured", file)
		}
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(b, []byte(password))
		if err != nil {
			return nil, fmt.Errorf("tls: %s: decrypt private key: %w", file, err)
		}
		defer clear(der)
		return pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: der}), nil
	}
}

// LoadCertPool returns the system roots plus every certificate of path, a
// PEM file or a directory of PEM files.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	files := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	} else if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("tls: %s: unexpected PEM block '%s': only certificates are allowed", f, b.Type)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("tls: %s: %w", f, err)
			}
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// HTTPServer returns the http.Server that serves s on addr with conf:
// upstream's header (5 s) and idle (90 s) timeouts, the per-connection
// identity context, the Go server's own messages (TLS handshake errors) at
// INFO on the error log, and the limits of limits.go on headers and HTTP/2
// streams, which upstream does not set. Serve it on a [LimitListener].
func (s *Server) HTTPServer(addr string, conf *tls.Config) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		TLSConfig:         conf,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
		HTTP2:             http2Config(),
		ConnContext:       ConnContext,
		ErrorLog:          s.errors.ServerLog(),
	}
}
