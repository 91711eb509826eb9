package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/secretscan"
)

// startCmd runs `kes args...` in-process until the test ends, and returns
// the lines it prints on stdout as they come.
func startCmd(t *testing.T, args ...string) (lines <-chan string, stderr *lockedBuffer) {
	t.Helper()
	return startCmdReload(t, nil, args...)
}

// startCmdReload is startCmd with reload as the server's SIGHUP.
func startCmdReload(t *testing.T, reload <-chan struct{}, args ...string) (lines <-chan string, stderr *lockedBuffer) {
	t.Helper()
	return startCmdEnv(t, &Env{Reload: reload}, args...)
}

// startCmdEnv is startCmd with env's Reload and KeyStores; its streams and
// an empty environment are set here.
func startCmdEnv(t *testing.T, env *Env, args ...string) (lines <-chan string, stderr *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	stderr = new(lockedBuffer)
	env.Stdin, env.Stdout, env.Stderr = strings.NewReader(""), outW, stderr
	env.Getenv = func(string) string { return "" }
	env.LookupEnv = func(string) (string, bool) { return "", false }
	done := make(chan int, 1)
	go func() {
		code := run(ctx, env, args)
		outW.Close()
		done <- code
	}()
	ch := make(chan string, 100)
	var stdout strings.Builder // the audit log; read once ch is closed
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "API Key ") { // the dev banner prints its API key
				stdout.WriteString(sc.Text() + "\n")
			}
			ch <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range ch { // drain so the server can finish writing
		}
		if code := <-done; code != 0 {
			t.Errorf("kes %s exited with %d: %s", strings.Join(args, " "), code, stderr)
		}
		checkNoSecrets(t, "standard output (banner, audit log)", stdout.String())
		checkNoSecrets(t, "standard error (error log)", stderr.String())
	})
	return ch, stderr
}

// fixtureSecrets scans for the repository's fixture secrets and secret
// patterns (internal/secretscan).
var fixtureSecrets = sync.OnceValues(func() (*secretscan.Scanner, error) {
	root, err := secretscan.Root()
	if err != nil {
		return nil, err
	}
	return secretscan.Load(root)
})

// checkNoSecrets fails t if text, which the server wrote to where, holds a
// secret.
func checkNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	s, err := fixtureSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Scan(text) {
		t.Errorf("the server's %s holds a secret (%s): %s", where, f.Name, f.Line)
	}
}

// waitFor reads lines until one matches re and returns its submatches.
func waitFor(t *testing.T, lines <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %s", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %s", re)
		}
	}
}

var apiLine = regexp.MustCompile(`^API\s+· (https://\S+)$`)

// TestDevServer: `kes server --dev` starts at once, prints where the
// admin's client certificate is, and that certificate creates a key and
// generates a data key, as the printed curl commands do.
func TestDevServer(t *testing.T) {
	lines, _ := startCmd(t, "server", "--dev", "--addr", "127.0.0.1:0")
	dir := waitFor(t, lines, regexp.MustCompile(`certificate are in (\S+)$`))[1]
	url := waitFor(t, lines, apiLine)[1]
	// Needs RLIMIT_MEMLOCK of some kB (ulimit -l; most systems give 64 kB
	// or 8 MB).
	waitFor(t, lines, regexp.MustCompile(`^Memory\s+keys in locked memory \(mlock, no core dump, guard pages\); process not dumpable$`))
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	c := devClient(t, dir)

	resp, err := c.Post(url+"/v1/key/create/my-key", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = c.Post(url+"/v1/key/generate/my-key", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("generate: %v %v", resp, err)
	}
	var dek struct{ Plaintext, Ciphertext []byte }
	json.NewDecoder(resp.Body).Decode(&dek)
	resp.Body.Close()
	if len(dek.Plaintext) != 32 || len(dek.Ciphertext) != 76 {
		t.Fatalf("generate: %d/%d bytes", len(dek.Plaintext), len(dek.Ciphertext))
	}
}

// TestConfigServer starts a server from a config file with an fs keystore
// and a predefined key, and checks the key exists and is served.
func TestConfigServer(t *testing.T) {
	dir, apiKey := newServerDir(t)
	file := writeFSServerConfig(t, dir, apiKey.Identity(), "keys:\n  - name: predefined\n")
	lines, _ := startCmd(t, "server", "--config", file)
	url := waitFor(t, lines, apiLine)[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	if _, err := os.Stat(filepath.Join(dir, "keys", "predefined")); err != nil {
		t.Fatalf("predefined key not created: %v", err)
	}
	cert, _ := kes.GenerateCertificate(apiKey, nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/v1/key/describe/predefined")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		CreatedBy string `json:"created_by"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || d.CreatedBy != apiKey.Identity().String() {
		t.Fatalf("describe predefined: %d %+v", resp.StatusCode, d)
	}
}

// TestServerErrors: the usage errors of spec cli.md §3.
func TestServerErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"server", "--dev", "--config", "x.yml"}, "Error: '--config' flag is not supported in development mode\n"},
		{[]string{"server", "extra"}, "Error: too many arguments. See 'kes server --help'\n"},
		{[]string{"server", "--config", "/nonexistent/kes.yml"}, "Error: "},
	} {
		var stderr strings.Builder
		env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: os.Getenv, LookupEnv: os.LookupEnv}
		if code := run(context.Background(), env, tt.args); code != 1 || !strings.HasPrefix(stderr.String(), tt.msg) {
			t.Errorf("kes %v: exit %d, stderr %q, want prefix %q", tt.args, code, stderr.String(), tt.msg)
		}
	}
}
