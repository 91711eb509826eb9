package vaulttest

import (
	"testing"

	"github.com/openkes/kes/internal/proxytest"
)

// TLSFiles are PEM files of a test CA and certificates it signed, written
// to a test's temporary directory.
type TLSFiles struct {
	CAFile         string // CA certificate
	ServerCertFile string // server certificate for 127.0.0.1 and localhost
	ServerKeyFile  string
	ClientCertFile string // client certificate
	ClientKeyFile  string
}

// NewTLSFiles generates a CA, a server and a client certificate (with
// [proxytest.CA], the tests' CA).
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	ca := proxytest.NewCA(t)
	server := ca.Issue(t, "server", proxytest.ServerAuth)
	client := ca.Issue(t, "client", proxytest.ClientAuth)
	return &TLSFiles{
		CAFile:         ca.File,
		ServerCertFile: server.CertFile, ServerKeyFile: server.KeyFile,
		ClientCertFile: client.CertFile, ClientKeyFile: client.KeyFile,
	}
}
