package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/openkes/kes"
)

// cliVectors holds the upstream identity vectors (testdata/vectors).
const cliVectors = "../../testdata/vectors/identities"

// cliBinDir holds the kes binary the end-to-end tests build once.
var cliBinDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kes-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildKes builds the kes binary at most once per test binary and returns
// its path.
var buildKes = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(cliBinDir, "kes")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func kesBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildKes()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestScripts runs the end-to-end scripts in testdata/*.txt against the
// built binary. Besides testscript's built-ins they have:
//
//	kesserver start|restart   start (or restart) a server with an fs
//	                          keystore; sets KES_SERVER, KES_API_KEY, ADMIN
//	tty kes <args>            run kes under a pseudo-terminal (terminal
//	                          mode); stdout then holds stdout+stderr
//
// and $VECTORS, the upstream identity vectors.
func TestScripts(t *testing.T) {
	bin := kesBinary(t)
	vectors, err := filepath.Abs(cliVectors)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("the terminal-mode tests need script(1) from util-linux: %v", err)
	}
	testscript.RunT(quietT{t}, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			e.Setenv("VECTORS", vectors)
			e.Setenv("HOME", e.WorkDir)
			e.Values[scriptServerKey{}] = &scriptServer{bin: bin}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"kesserver": cmdKesServer,
			"tty":       cmdTTY,
		},
	})
}

// quietT runs the scripts with their log shown only when one fails, also
// under `go test -v` and `-json`: the scripts pass API keys and print new
// ones (what `kes identity new` is for), and the suite's output is checked
// for secrets (scripts/test.sh).
type quietT struct{ *testing.T }

func (t quietT) Run(name string, f func(testscript.T)) {
	t.T.Run(name, func(t *testing.T) { f(quietT{t}) })
}

func (quietT) Verbose() bool { return false }

type scriptServerKey struct{}

// scriptServer is the kes server process of one script.
type scriptServer struct {
	bin    string
	config string
	stderr *lockedBuffer // of the running (or last) process
	cmd    *exec.Cmd
	done   chan struct{}
}

func cmdKesServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: kesserver start|restart")
	}
	s := ts.Value(scriptServerKey{}).(*scriptServer)
	switch args[0] {
	case "start":
		if s.cmd != nil {
			ts.Fatalf("server already started")
		}
		ts.Check(s.writeConfig(ts))
		ts.Defer(s.stop)
	case "restart":
		if s.cmd == nil {
			ts.Fatalf("server not started")
		}
		s.stop()
	default:
		ts.Fatalf("usage: kesserver start|restart")
	}
	addr, err := s.start()
	ts.Check(err)
	ts.Setenv("KES_SERVER", addr)
}

// writeConfig writes a server certificate, a config with an fs keystore
// and a fresh admin API key, and sets KES_API_KEY and ADMIN.
func (s *scriptServer) writeConfig(ts *testscript.TestScript) error {
	key, err := s.configure(ts.MkAbs(".kesserver"))
	if err != nil {
		return err
	}
	ts.Setenv("KES_API_KEY", key.Secret())
	ts.Setenv("ADMIN", key.Identity().String())
	return nil
}

// configure writes a server certificate and a config with an fs keystore
// to dir and returns the admin API key.
func (s *scriptServer) configure(dir string) (kes.APIKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return kes.APIKey{}, err
	}
	if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
		return kes.APIKey{}, err
	}
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return kes.APIKey{}, err
	}
	config := serverConfig(dir, key.Identity()) + "keystore:\n  fs:\n    path: " + filepath.Join(dir, "keys") + "\n"
	s.config = filepath.Join(dir, "config.yml")
	return key, os.WriteFile(s.config, []byte(config), 0o600)
}

// startTestServer starts a server for a Go test and returns its address
// and admin API key.
func startTestServer(t *testing.T) (addr string, admin kes.APIKey) {
	t.Helper()
	s := &scriptServer{bin: kesBinary(t)}
	admin, err := s.configure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	if addr, err = s.start(); err != nil {
		t.Fatal(err)
	}
	return addr, admin
}

var serverAPILine = regexp.MustCompile(`^API\s+· https://(\S+)$`)

// start starts the server and returns its address once it serves.
func (s *scriptServer) start() (string, error) {
	cmd := exec.Command(s.bin, "server", "--config", s.config)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	stderr := new(lockedBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	s.stderr = stderr
	s.cmd, s.done = cmd, make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		var found string
		for sc.Scan() { // keep reading: the audit log goes to stdout
			if m := serverAPILine.FindStringSubmatch(sc.Text()); m != nil && found == "" {
				found = m[1]
			}
			if found != "" && strings.HasPrefix(sc.Text(), "=> Server is up") {
				addr <- found
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	select {
	case a := <-addr:
		return a, nil
	case <-s.done:
		return "", fmt.Errorf("server exited: %s", stderr.String())
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("server did not start: %s", stderr.String())
	}
}

// stop stops the server and waits until it has exited.
func (s *scriptServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// ttyVars are the variables passed to a command run by tty.
var ttyVars = []string{"PATH", "HOME", "WORK", "KES_SERVER", "KES_API_KEY", "MINIO_KES_SERVER", "MINIO_KES_API_KEY"}

// cmdTTY runs a command under script(1), so that its stdout and stderr are
// a terminal. The combined output, with \r\n turned into \n, becomes the
// script's stdout.
func cmdTTY(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: tty command [args...]")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command("script", "-qefc", strings.Join(quoted, " "), "/dev/null")
	cmd.Dir = ts.Getenv("WORK")
	cmd.Env = []string{"TERM=xterm"}
	for _, v := range ttyVars {
		if val := ts.Getenv(v); val != "" {
			cmd.Env = append(cmd.Env, v+"="+val)
		}
	}
	out, err := cmd.Output()
	ts.Stdout().Write([]byte(strings.ReplaceAll(string(out), "\r\n", "\n")))
	switch {
	case err != nil && !neg:
		ts.Fatalf("tty %s: %v\n%s", strings.Join(args, " "), err, out)
	case err == nil && neg:
		ts.Fatalf("tty %s: unexpected success", strings.Join(args, " "))
	}
}
