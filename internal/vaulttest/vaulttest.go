// Package vaulttest runs a real HashiCorp Vault server in dev mode for
// tests: on loopback, on free ports, with a fixed root token, stopped by
// t.Cleanup. Stop and Restart let tests take Vault away under load.
//
// The server binary is $OPENKES_VAULT_BIN or, if that is unset, the one
// scripts/install-vault.sh builds and caches. If neither yields a binary the
// test fails with a message saying how to get one; it never skips.
//
// This package is imported by tests only.
package vaulttest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/peerbin"

	"github.com/hashicorp/vault/api"
)

// RootToken is the root token of every dev server started here.
const RootToken = "openkes-test-root"

const startTimeout = 60 * time.Second

var vaultPeer = &peerbin.Peer{Name: "Vault server", Env: "OPENKES_VAULT_BIN", Script: "install-vault.sh"}

// Bin returns the path of the Vault server binary or fails t.
func Bin(t testing.TB) string {
	t.Helper()
	return vaultPeer.Bin(t)
}

// Options configure a dev server. The zero value is a plain HTTP server.
type Options struct {
	// TLS, if not nil, adds an HTTPS listener (Server.TLSAddr) with these
	// files. The plain listener (Server.Addr) stays for administration.
	TLS *TLSFiles

	// RequireClientCert makes the HTTPS listener require a client
	// certificate signed by TLS.CAFile.
	RequireClientCert bool
}

// Server is a running Vault dev server.
type Server struct {
	Addr    string // host:port of the plain HTTP listener
	TLSAddr string // host:port of the HTTPS listener, if Options.TLS was set

	*proc
}

// URL returns the address of the plain listener, http://127.0.0.1:port.
func (s *Server) URL() string { return "http://" + s.Addr }

// TLSURL returns the address of the HTTPS listener.
func (s *Server) TLSURL() string { return "https://" + s.TLSAddr }

// Start starts a Vault dev server and registers its Stop with t.Cleanup.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{proc: newProc(t)}
	s.Addr = freeAddr(t)
	s.args = []string{"server", "-dev", "-dev-root-token-id=" + RootToken,
		"-dev-listen-address=" + s.Addr, "-dev-no-store-token", "-log-level=warn"}
	if opts.TLS != nil {
		s.TLSAddr = freeAddr(t)
		hcl := fmt.Sprintf("listener \"tcp\" {\n  address = %q\n  cluster_address = %q\n"+
			"  tls_cert_file = %q\n  tls_key_file = %q\n  tls_client_ca_file = %q\n"+
			"  tls_require_and_verify_client_cert = %v\n}\n",
			s.TLSAddr, freeAddr(t), opts.TLS.ServerCertFile, opts.TLS.ServerKeyFile, opts.TLS.CAFile, opts.RequireClientCert)
		conf := filepath.Join(s.dir, "listener.hcl")
		if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = append(s.args, "-config="+conf)
	}
	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

// freeAddr returns a loopback address whose port and the next one (Vault's
// dev cluster listener) are free.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return l.Addr().String()
		}
	}
	t.Fatal("vaulttest: no free port pair")
	return ""
}

// start starts the process and waits until the server answers as
// initialised and unsealed.
func (s *Server) start(t testing.TB) {
	t.Helper()
	s.launch(t)
	s.waitHealth(t, s.URL(), func(status int) bool { return status == http.StatusOK })
}

// Stop stops the server and waits for it to exit. Stopping a stopped
// server does nothing. Its in-memory storage is lost.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Pause stops the server process with SIGSTOP, as a hung server: it keeps
// its storage and its listeners, where connections still open (the kernel
// accepts them) but get no answer, until [Server.Resume]. A paused server
// is resumed at the end of the test.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { s.signal(t, syscall.SIGCONT) })
}

// Resume continues a server stopped by [Server.Pause] with SIGCONT.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

// Restart stops the server and starts a fresh one on the same addresses
// with the same root token. Engines, auth methods and data are gone.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Client returns an API client with the root token for the plain listener.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	conf := api.DefaultConfig()
	conf.Address = s.URL()
	c, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(RootToken)
	c.ClearNamespace()
	return c
}

// Do runs fn against the server with a root client and fails t on error.
func (s *Server) Do(t testing.TB, fn func(c *api.Client) error) {
	t.Helper()
	if err := fn(s.Client(t)); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
}

// EnableKV mounts a K/V engine ("v1" or "v2") at path.
func (s *Server) EnableKV(t testing.TB, path, version string) {
	t.Helper()
	v := strings.TrimPrefix(version, "v")
	s.Do(t, func(c *api.Client) error {
		return c.Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": v}})
	})
	if v == "2" {
		// A v2 mount upgrades in the background; wait until it answers.
		s.waitFor(t, "kv v2 mount "+path, func(c *api.Client) error {
			_, err := c.Logical().ListWithContext(context.Background(), path+"/metadata")
			return err
		})
	}
}

// EnableTransit mounts the transit engine at path and creates key.
func (s *Server) EnableTransit(t testing.TB, path, key string) {
	t.Helper()
	s.Do(t, func(c *api.Client) error {
		if err := c.Sys().Mount(path, &api.MountInput{Type: "transit"}); err != nil {
			return err
		}
		_, err := c.Logical().Write(path+"/keys/"+key, nil)
		return err
	})
}

// WritePolicy writes an ACL policy.
func (s *Server) WritePolicy(t testing.TB, name, rules string) {
	t.Helper()
	s.Do(t, func(c *api.Client) error { return c.Sys().PutPolicy(name, rules) })
}

// AppRole configures an AppRole auth method at mount with a role whose
// role_id and secret_id are the given values, so that a restarted server
// accepts the same credentials. params are extra role parameters
// (token_ttl, token_max_ttl, token_policies, ...).
func (s *Server) AppRole(t testing.TB, mount, role, roleID, secretID string, params map[string]any) {
	t.Helper()
	s.Do(t, func(c *api.Client) error { return appRole(c, mount, role, roleID, secretID, params) })
}

func appRole(c *api.Client, mount, role, roleID, secretID string, params map[string]any) error {
	if err := c.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return err
	}
	rp := "auth/" + mount + "/role/" + role
	if _, err := c.Logical().Write(rp, params); err != nil {
		return err
	}
	if _, err := c.Logical().Write(rp+"/role-id", map[string]any{"role_id": roleID}); err != nil {
		return err
	}
	_, err := c.Logical().Write(rp+"/custom-secret-id", map[string]any{"secret_id": secretID})
	return err
}

// waitFor polls fn until it succeeds.
func (s *Server) waitFor(t testing.TB, what string, fn func(c *api.Client) error) {
	t.Helper()
	c := s.Client(t)
	Eventually(t, startTimeout, what, func() error { return fn(c) })
}

// Eventually calls fn every 50ms until it returns nil and fails t with the
// last error if that does not happen within timeout. It exists for
// conditions on a real Vault server, which runs on the real clock.
func Eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("vaulttest: %s: not reached within %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// Seal seals the server.
func (s *Server) Seal(t testing.TB) {
	t.Helper()
	s.Do(t, func(c *api.Client) error { return c.Sys().Seal() })
}

// Unseal unseals the server with the dev unseal key from its log.
func (s *Server) Unseal(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, line := range strings.Split(string(b), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(line), "Unseal Key: "); ok {
			key = k // the last one belongs to the running server
		}
	}
	if key == "" {
		t.Fatalf("vaulttest: no unseal key in the log:\n%s", s.Log())
	}
	s.Do(t, func(c *api.Client) error {
		_, err := c.Sys().Unseal(key)
		return err
	})
}
