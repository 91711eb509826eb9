package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
)

// TestStartEventsCounted: what the key store logs while the server starts
// (a Vault login) is counted in kes_log_error_events like every later
// record. The metrics hooks used to be set on the logs by api.New, after
// the store had connected, so that first event was lost.
func TestStartEventsCounted(t *testing.T) {
	dir := t.TempDir()
	if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	admin, _ := kes.GenerateAPIKey(nil)
	store := new(mem.Store)
	setup := &serverSetup{
		Addr:  "127.0.0.1:0",
		TLS:   &api.TLSConfig{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")},
		Admin: admin.Identity(),
		Connect: func(_ context.Context, l *slog.Logger) (keystore.Store, error) {
			l.Info("logged in to the key store")
			return store, nil
		},
		Banner: "In Memory",
		Keys:   []string{"predefined"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	stderr := &lockedWriter{w: new(strings.Builder)}
	env := &Env{Stdin: strings.NewReader(""), Stdout: outW, Stderr: stderr, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan error, 1)
	go func() {
		err := serve(ctx, env, setup)
		outW.Close()
		done <- err
	}()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range lines {
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	url := waitFor(t, lines, apiLine)[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	cert, _ := kes.GenerateCertificate(admin, nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	if !regexp.MustCompile(`(?m)^kes_log_error_events 1$`).Match(body) {
		t.Fatalf("kes_log_error_events does not count the record logged at start:\n%s", grepLines(string(body), "kes_log_"))
	}
	// The config's predefined keys were created at start.
	if _, err := store.Get(t.Context(), "predefined"); err != nil {
		t.Fatalf("predefined key: %v", err)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
