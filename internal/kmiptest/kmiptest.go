// Package kmiptest runs a real KMIP server, PyKMIP's pykmip-server, for
// tests: on loopback, on a free port, with its own certificates from a
// [proxytest.CA], its own configuration file and SQLite database in
// t.TempDir(), killed by t.Cleanup.
//
// The server binary is $OPENKES_PYKMIP_BIN or, if that is unset, the one
// `scripts/install-deb.sh pykmip-server python3-pykmip` finds or installs
// (Debian's python3-pykmip). If neither yields a binary the test fails with
// a message saying how to get one; it never skips.
//
// PyKMIP is told to speak TLS 1.2 only, with the ECDHE-ECDSA AES-GCM
// suites (the certificates are ECDSA P-256), which Go's client offers by
// default: its default "Basic" suite is TLS 1.0, which the store refuses.
//
// This package is imported by tests only.
package kmiptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	kmipgo "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/openkes/kes/internal/peerbin"
	"github.com/openkes/kes/internal/proxytest"
)

const startTimeout = 30 * time.Second

var pykmipPeer = &peerbin.Peer{
	Name: "PyKMIP server", Env: "OPENKES_PYKMIP_BIN",
	Script: "install-deb.sh", Args: []string{"pykmip-server", "python3-pykmip"},
}

// Bin returns the path of pykmip-server or fails t.
func Bin(t testing.TB) string {
	t.Helper()
	return pykmipPeer.Bin(t)
}

// Server is a running pykmip-server.
type Server struct {
	// Addr is the server's host:port, 127.0.0.1 and a free port.
	Addr string
	// CA issued the server's and the client's certificates; CA.File is
	// the root a client needs.
	CA *proxytest.CA
	// Client is a client certificate the server accepts. PyKMIP makes
	// its common name the owner of the objects it creates.
	Client *proxytest.Cert

	logFile string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start starts a pykmip-server and registers its Stop with t.Cleanup. It
// returns once the server accepts connections.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Bin(t)
	dir := t.TempDir()
	ca := proxytest.NewCA(t)
	server := ca.Issue(t, "pykmip", proxytest.ServerAuth)
	s := &Server{
		Addr: freeAddr(t), CA: ca, Client: ca.Issue(t, "openkes", proxytest.ClientAuth),
		logFile: filepath.Join(dir, "server.log"),
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	policies := filepath.Join(dir, "policies")
	if err := os.Mkdir(policies, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[server]
hostname=%s
port=%s
certificate_path=%s
key_path=%s
ca_path=%s
auth_suite=TLS1.2
tls_cipher_suites=ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384
enable_tls_client_auth=True
policy_path=%s
logging_level=INFO
database_path=%s
`, host, port, server.CertFile, server.KeyFile, ca.File, policies, filepath.Join(dir, "pykmip.db"))
	confFile := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", confFile, "-l", s.logFile)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: PyKMIP forks a multiprocessing manager,
	// which Stop kills with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("kmiptest: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	t.Cleanup(s.Stop)
	s.waitReady(t)
	return s
}

// freeAddr returns a loopback address with a port that was free.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitReady polls the port until the server listens. PyKMIP binds, then
// listens just before it accepts, so a connection that opens means it
// serves. The server runs on the real clock, so polling with a deadline
// is the only way to wait for it.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("kmiptest: pykmip-server exited during start:\n%s", s.Log())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kmiptest: pykmip-server not listening after %v (last error %v):\n%s", startTimeout, err, s.Log())
		}
	}
}

// Log returns the tail of the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return peerbin.LastLines(string(b), 40)
}

// Stop kills the server and its process group and waits for it to exit:
// PyKMIP's own shutdown waits up to 10 s per connection thread, and the
// test's data is thrown away anyway. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// KMIPClient returns a KMIP client of the server with [Server.Client]'s
// certificate, closed at the end of the test: another node or an
// operator behind the store's back.
func (s *Server) KMIPClient(t testing.TB) *kmipclient.Client {
	t.Helper()
	c, err := kmipclient.DialContext(t.Context(), s.Addr,
		kmipclient.WithRootCAFile(s.CA.File), kmipclient.WithClientCertFiles(s.Client.CertFile, s.Client.KeyFile))
	if err != nil {
		t.Fatalf("kmiptest: connect: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Secrets returns the key material of every Secret Data object named
// name, read with a client of its own.
func (s *Server) Secrets(t testing.TB, name string) [][]byte {
	t.Helper()
	c := s.KMIPClient(t)
	loc, err := c.Locate().WithObjectType(kmipgo.ObjectTypeSecretData).WithName(name).ExecContext(t.Context())
	if err != nil {
		t.Fatalf("kmiptest: locate %q: %v", name, err)
	}
	var out [][]byte
	for _, id := range loc.UniqueIdentifier {
		resp, err := c.Request(t.Context(), &payloads.GetRequestPayload{UniqueIdentifier: id})
		if err != nil {
			t.Fatalf("kmiptest: get %s: %v", id, err)
		}
		sd, ok := resp.(*payloads.GetResponsePayload).Object.(*kmipgo.SecretData)
		if !ok {
			t.Fatalf("kmiptest: object %s is a %T", id, resp.(*payloads.GetResponsePayload).Object)
		}
		b, err := sd.Data()
		if err != nil {
			t.Fatalf("kmiptest: object %s: %v", id, err)
		}
		out = append(out, b)
	}
	return out
}
