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
// over its TLS listener by its admin: the end-to-end tests of the stores
// whose peers run as processes (kumo, PyKMIP).
type storeServer struct {
	t       *testing.T
	url     string
	admin   kes.Identity
	client  *http.Client
	stderr  *strings.Builder
	peerLog func() string // the store peer's log, printed when a call fails
}

// startStoreServer writes a config file with the keystore section (YAML,
// already indented under `keystore:`), starts the server on it, waits
// until the banner names the store as kms and the server is up.
func startStoreServer(t *testing.T, section, kms string, peerLog func() string) *storeServer {
	t.Helper()
	dir, apiKey := newServerDir(t)
	file := writeServerConfig(t, dir, apiKey.Identity(), "log:\n  audit: off\nkeystore:\n"+section)
	lines, stderr := startCmd(t, "server", "--config", file)
	waitFor(t, lines, regexp.MustCompile(`^KMS\s+`+regexp.QuoteMeta(kms)+`$`))
	url := waitFor(t, lines, apiLine)[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	cert, err := kes.GenerateCertificate(apiKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	t.Cleanup(c.CloseIdleConnections)
	return &storeServer{t: t, url: url, admin: apiKey.Identity(), client: c, stderr: stderr, peerLog: peerLog}
}

// do sends one request with body (JSON-encoded unless nil) and returns
// the answer's status and body.
func (s *storeServer) do(method, path string, body any) (int, []byte) {
	t := s.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
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

// call is do for a request that must answer 200; it returns the body.
func (s *storeServer) call(method, path string, body any) []byte {
	s.t.Helper()
	code, b := s.do(method, path, body)
	if code != http.StatusOK {
		s.t.Fatalf("%s %s: %d %s\nserver stderr:\n%s\nstore peer:\n%s", method, path, code, b, s.stderr, s.peerLog())
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
