package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/rsyslogtest"
)

// TestAuditSinksServer runs `kes server` with a config file that enables
// both audit sinks (a rotating file and syslog over TCP to a real rsyslogd)
// and turns the console audit off, makes requests from concurrent
// clients, stops the server and checks that every request is one event in
// the files and one message at rsyslogd, in each client's order, and that
// no secret is in either.
func TestAuditSinksServer(t *testing.T) {
	syslog := rsyslogtest.Start(t)
	dir, apiKey := newServerDir(t)
	auditPath := filepath.Join(dir, "audit", "audit.log")
	file := writeServerConfig(t, dir, apiKey.Identity(), `log:
  audit: on
  audit_stdout: off
  audit_file:
    path: `+auditPath+`
    max_size: 16KiB
  audit_syslog:
    network: tcp
    address: `+syslog.TCP+`
    app_name: kes-test
keystore:
  fs:
    path: `+filepath.Join(dir, "keys")+`
`)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	outR, outW := io.Pipe()
	stderr := new(lockedBuffer)
	env := &Env{
		Stdin: strings.NewReader(""), Stdout: outW, Stderr: stderr,
		Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false },
	}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, env, []string{"server", "--config", file})
		outW.Close()
		done <- code
	}()
	lines := make(chan string, 100)
	var stdout strings.Builder // read once lines is closed
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			stdout.WriteString(sc.Text() + "\n")
			lines <- sc.Text()
		}
	}()
	url := waitFor(t, lines, apiLine)[1]
	wantOutputs := "audit=file:" + auditPath + ",syslog:tcp:" + syslog.TCP + " level=INFO"
	if got := waitFor(t, lines, regexp.MustCompile(`^\s+(audit=.*)$`))[1]; got != wantOutputs {
		t.Errorf("banner: %q, want %q", got, wantOutputs)
	}
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	cert, _ := kes.GenerateCertificate(apiKey, nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	defer c.CloseIdleConnections()

	// Each client creates its key, then generates data keys (whose
	// plaintext must not reach the audit log) and asks for a key that
	// does not exist (404): every request is one event.
	const clients, rounds = 8, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			do := func(method, path string) error {
				req, _ := http.NewRequestWithContext(ctx, method, url+path, strings.NewReader(`{}`))
				resp, err := c.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return nil
			}
			if err := do("PUT", fmt.Sprintf("/v1/key/create/c%d", i)); err != nil {
				errs <- err
				return
			}
			for r := range rounds {
				if err := do("POST", fmt.Sprintf("/v1/key/generate/c%d", i)); err != nil {
					errs <- err
					return
				}
				if err := do("GET", fmt.Sprintf("/v1/key/describe/c%d-missing-%d", i, r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cancel() // stop: the sinks must write everything before run returns
	for range lines {
	}
	if code := <-done; code != 0 {
		t.Fatalf("kes server exited with %d: %s", code, stderr)
	}
	if strings.Contains(stdout.String(), "level=INFO msg=") {
		t.Errorf("audit lines on stdout with log.audit_stdout off:\n%s", stdout.String())
	}
	checkNoSecrets(t, "standard error (error log)", stderr.String())

	const want = clients * (1 + 2*rounds)
	// The file sink: all backups, oldest first, then the file.
	backups, err := log.Backups(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(backups) < 2 {
		t.Errorf("%d backups of a 16 KiB audit file after %d events, want rotation", len(backups), want)
	}
	var filePaths []string
	var all bytes.Buffer
	for _, name := range append(backups, auditPath) {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(data)
		filePaths = append(filePaths, eventPaths(t, name, bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")))...)
	}
	checkNoSecrets(t, "audit file", all.String())
	checkClientEvents(t, "audit file", filePaths, clients, rounds)

	// The syslog sink: the server has sent everything before it ended.
	msgs := syslog.WaitMessages(want)
	var syslogPaths [][]byte
	var text strings.Builder
	for _, m := range msgs {
		if m.AppName != "kes-test" || m.MsgID != "audit" || m.Severity != "info" {
			t.Fatalf("unexpected syslog message %+v", m)
		}
		syslogPaths = append(syslogPaths, []byte(m.Msg))
		text.WriteString(m.Msg + "\n")
	}
	checkNoSecrets(t, "audit syslog", text.String())
	checkClientEvents(t, "audit syslog", eventPaths(t, "syslog", syslogPaths), clients, rounds)
}

// eventPaths decodes JSON audit events and returns their request paths.
func eventPaths(t *testing.T, where string, events [][]byte) []string {
	t.Helper()
	var paths []string
	for _, line := range events {
		if len(line) == 0 {
			continue
		}
		var ev struct {
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
			Response struct {
				Code int `json:"code"`
			} `json:"response"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("%s: %q: %v", where, line, err)
		}
		paths = append(paths, fmt.Sprintf("%s %d", ev.Request.Path, ev.Response.Code))
	}
	return paths
}

// checkClientEvents checks that paths hold the events of each client of
// TestAuditSinksServer, once each, in the client's order.
func checkClientEvents(t *testing.T, where string, paths []string, clients, rounds int) {
	t.Helper()
	if len(paths) != clients*(1+2*rounds) {
		t.Fatalf("%s: %d events, want %d", where, len(paths), clients*(1+2*rounds))
	}
	byClient := make([][]string, clients)
	for _, p := range paths {
		var i int
		if _, err := fmt.Sscanf(p[strings.LastIndexByte(p[:strings.IndexByte(p, ' ')], '/')+1:], "c%d", &i); err != nil || i < 0 || i >= clients {
			t.Fatalf("%s: unexpected event %q", where, p)
		}
		byClient[i] = append(byClient[i], p)
	}
	for i, got := range byClient {
		want := []string{fmt.Sprintf("/v1/key/create/c%d 200", i)}
		for r := range rounds {
			want = append(want, fmt.Sprintf("/v1/key/generate/c%d 200", i), fmt.Sprintf("/v1/key/describe/c%d-missing-%d 404", i, r))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: client %d's events\n%s\nwant\n%s", where, i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
