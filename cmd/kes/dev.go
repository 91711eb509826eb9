package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/server"
)

// devAddr is where `kes server --dev` listens unless --addr says otherwise:
// loopback, since everything about a dev server is throw-away.
const devAddr = "127.0.0.1:7373"

// runDevServer starts a development server: keys in memory, a fresh
// self-signed server certificate and a fresh admin API key. The admin's
// client certificate and the server certificate are written to a temporary
// folder so that curl can talk to the server at once.
func runDevServer(ctx context.Context, env *Env, addr string) error {
	if addr == "" {
		addr = devAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address '%s': %w", addr, err)
	}
	apiKey, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kes-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if err := writeDevServerCert(dir, host); err != nil {
		return err
	}
	if err := writeDevClientCert(dir, apiKey); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Development server: the admin's client certificate and key and the server certificate are in %s\n", dir)
	fmt.Fprintf(env.Stdout, "Try:\n  curl --cacert %[1]s/server.crt --cert %[1]s/client.crt --key %[1]s/client.key -X POST https://%[2]s/v1/key/create/my-key\n", dir, addr)
	fmt.Fprintf(env.Stdout, "  curl --cacert %[1]s/server.crt --cert %[1]s/client.crt --key %[1]s/client.key -X POST https://%[2]s/v1/key/generate/my-key\n\n", dir, addr)

	return serve(ctx, env, &server.Config{
		Addr: addr,
		TLS: &api.TLSConfig{
			CertFile: filepath.Join(dir, "server.crt"),
			KeyFile:  filepath.Join(dir, "server.key"),
		},
		Admin: apiKey.Identity(),
		Cache: cache.Config{Any: 5 * time.Minute, Unused: 30 * time.Second},
		// As a config file without key_deletion: soft deletion.
		Deletion: api.Deletion{Retention: config.DefaultRetention},
		Connect: func(context.Context, *slog.Logger) (keystore.Store, error) {
			return &mem.Store{}, nil
		},
		Banner: "In Memory",
	}, nil, apiKey.Secret())
}

// writeDevServerCert writes a self-signed ECDSA P-256 server certificate
// for localhost and the listen IP (or loopback when listening everywhere).
func writeDevServerCert(dir, host string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now,
		NotAfter:              now.Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "server.crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "server.key"), "PRIVATE KEY", keyDER, 0o600)
}

// writeDevClientCert writes the certificate a client derives from the admin
// API key, and its private key.
func writeDevClientCert(dir string, apiKey kes.APIKey) error {
	cert, err := kes.GenerateCertificate(apiKey, nil)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(apiKey.Private())
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "client.crt"), "CERTIFICATE", cert.Certificate[0], 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "client.key"), "PRIVATE KEY", keyDER, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
