package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/openkes/kes"
)

// storeServer is a `kes server --config` process on one key store, used
// over its TLS listener by its admin: the end-to-end tests of the stores.
type storeServer struct {
	t       *testing.T
	url     string
	admin   kes.Identity
	client  *http.Client
	stderr  *lockedBuffer // the server's, printed when a call fails; may be nil
	peerLog func() string // the store peer's log, printed when a call fails; may be nil
}

// startStoreServer writes a config file with the keystore section (YAML,
// already indented under `keystore:`), starts the server on it in-process
// and returns it once the banner names the store as kms and the server
// is up.
func startStoreServer(t *testing.T, section, kms string, peerLog func() string) *storeServer {
	t.Helper()
	dir, apiKey := newServerDir(t)
	file := writeServerConfig(t, dir, apiKey.Identity(), "log:\n  audit: off\nkeystore:\n"+section)
	lines, stderr := startCmd(t, "server", "--config", file)
	return waitStoreServer(t, lines, kmsLine(kms), apiKey, stderr, peerLog)
}

// kmsLine matches the banner line that names the key store as kms.
func kmsLine(kms string) *regexp.Regexp {
	return regexp.MustCompile(`^KMS\s+` + regexp.QuoteMeta(kms) + `$`)
}

// waitStoreServer reads a starting server's stdout lines until its banner
// line matches kms and the server is up, and returns the server used by
// admin.
func waitStoreServer(t *testing.T, lines <-chan string, kms *regexp.Regexp, admin kes.APIKey, stderr *lockedBuffer, peerLog func() string) *storeServer {
	t.Helper()
	waitFor(t, lines, kms)
	url := waitFor(t, lines, apiLine)[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	cert, err := kes.GenerateCertificate(admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(c.CloseIdleConnections)
	return &storeServer{t: t, url: url, admin: admin.Identity(), client: c, stderr: stderr, peerLog: peerLog}
}

// do sends one request with body (JSON-encoded unless nil) and returns
// the answer's status and body.
func (s *storeServer) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	return s.send(method, path, rd)
}

// send sends one request with the body as it is (nil: none) and returns
// the answer's status and body.
func (s *storeServer) send(method, path string, body io.Reader) (int, []byte) {
	t := s.t
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// doRaw sends one request with body as it is and returns the answer's
// status and body.
func (s *storeServer) doRaw(method, path, body string) (int, string) {
	s.t.Helper()
	code, b := s.send(method, path, strings.NewReader(body))
	return code, string(b)
}

// call is do for a request that must answer 200; it returns the body.
func (s *storeServer) call(method, path string, body any) []byte {
	s.t.Helper()
	code, b := s.do(method, path, body)
	if code != http.StatusOK {
		var stderr, peer string
		if s.stderr != nil {
			stderr = "\nserver stderr:\n" + s.stderr.String()
		}
		if s.peerLog != nil {
			peer = "\nstore peer:\n" + s.peerLog()
		}
		s.t.Fatalf("%s %s: %d %s%s%s", method, path, code, b, stderr, peer)
	}
	return b
}

// decode unmarshals the JSON body b into v.
func (s *storeServer) decode(b []byte, v any) {
	s.t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		s.t.Fatalf("decode %q: %v", b, err)
	}
}

// checkDEK generates a data key with the key name and decrypts its
// ciphertext, and fails the test unless both give the same 32 bytes.
func (s *storeServer) checkDEK(name string) {
	s.t.Helper()
	var dek struct{ Plaintext, Ciphertext []byte }
	s.decode(s.call("POST", "/v1/key/generate/"+name, nil), &dek)
	var pt struct{ Plaintext []byte }
	s.decode(s.call("POST", "/v1/key/decrypt/"+name, map[string]any{"ciphertext": dek.Ciphertext}), &pt)
	if len(dek.Plaintext) != 32 || !bytes.Equal(pt.Plaintext, dek.Plaintext) {
		s.t.Fatalf("decrypt: %x, want %x", pt.Plaintext, dek.Plaintext)
	}
}

// listKeys returns the names of the keys that match pattern.
func (s *storeServer) listKeys(pattern string) []string {
	s.t.Helper()
	var list struct{ Names []string }
	s.decode(s.call("GET", "/v1/key/list/"+pattern, nil), &list)
	return list.Names
}
