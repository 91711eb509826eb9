package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// fsServer is the built kes binary serving an fs key store in keys, for
// the crash and disk tests: it can be killed with SIGKILL and started
// again on the same directory and configuration.
type fsServer struct {
	scriptServer
	keys string       // the fs key store's directory
	hc   *http.Client // the admin's client
	url  string       // https://127.0.0.1:port of the running server
}

// newFSServer configures a server whose fs key store is keys (or
// <tempdir>/keys if empty) and starts it. It is stopped when the test ends.
func newFSServer(t *testing.T, keys string) *fsServer {
	t.Helper()
	dir := t.TempDir()
	s := &fsServer{scriptServer: scriptServer{bin: kesBinary(t)}}
	admin, err := s.configure(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = filepath.Join(dir, "keys")
	if keys != "" {
		s.keys = keys
		config, err := os.ReadFile(s.config)
		if err != nil {
			t.Fatal(err)
		}
		config = bytes.Replace(config, []byte("path: "+filepath.Join(dir, "keys")), []byte("path: "+keys), 1)
		if err := os.WriteFile(s.config, config, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := serverCertPool(t, dir)
	cert, err := kes.GenerateCertificate(admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.hc = &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 32,
		},
		Timeout: 20 * time.Second,
	}
	t.Cleanup(s.stop)
	t.Cleanup(s.hc.CloseIdleConnections)
	s.restart(t)
	return s
}

// restart starts the server (again) and waits until it serves.
func (s *fsServer) restart(t *testing.T) {
	t.Helper()
	addr, err := s.start()
	if err != nil {
		t.Fatal(err)
	}
	s.url = "https://" + addr
}

// kill sends SIGKILL and waits until the process is gone.
func (s *fsServer) kill() {
	s.cmd.Process.Kill()
	<-s.done
	s.hc.CloseIdleConnections()
}

// do sends a request with a JSON body (none if body is nil) and returns the
// status and reply. A transport error is returned as err.
func (s *fsServer) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, reply, nil
}

// mustDo is do for requests that must get an answer.
func (s *fsServer) mustDo(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	code, reply, err := s.do(t.Context(), method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, reply
}

// list returns the names the server lists.
func (s *fsServer) list(ctx context.Context) ([]string, error) {
	code, reply, err := s.do(ctx, http.MethodGet, "/v1/key/list/", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("list: %d %s", code, reply)
	}
	var l kes.ListKeysResponse
	if err := json.Unmarshal(reply, &l); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return l.Names, nil
}

// roundTrip generates a data key under name and decrypts it, and fails
// unless both work and give the same plaintext.
func (s *fsServer) roundTrip(ctx context.Context, name string) error {
	assoc := []byte("context of " + name)
	code, reply, err := s.do(ctx, http.MethodPost, "/v1/key/generate/"+name, kes.GenerateKeyRequest{Context: assoc})
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("generate %s: %d %s", name, code, reply)
	}
	var gen kes.GenerateKeyResponse
	if err := json.Unmarshal(reply, &gen); err != nil || len(gen.Plaintext) != 32 {
		return fmt.Errorf("generate %s: bad reply (%d bytes, %v)", name, len(reply), err)
	}
	code, reply, err = s.do(ctx, http.MethodPost, "/v1/key/decrypt/"+name,
		map[string][]byte{"ciphertext": gen.Ciphertext, "context": assoc})
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("decrypt %s: %d %s", name, code, reply)
	}
	var dec struct{ Plaintext []byte }
	if err := json.Unmarshal(reply, &dec); err != nil || !bytes.Equal(dec.Plaintext, gen.Plaintext) {
		return fmt.Errorf("decrypt %s: another plaintext than generated (%v)", name, err)
	}
	return nil
}

// randomKey returns 32 random bytes to import.
func randomKey() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
