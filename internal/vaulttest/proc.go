package vaulttest

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/peerbin"
)

// proc is one Vault server process, of a dev [Server] or a cluster
// [Node]: the binary with args, run in dir with HOME there and no VAULT_*
// variables, its output appended to dir/vault.log. It may be started
// again after it stopped. Its methods are safe for concurrent use.
type proc struct {
	bin, dir, logFile string
	args              []string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed once cmd has exited
}

// newProc returns a process of the Vault binary in a new directory;
// the caller sets args.
func newProc(t testing.TB) *proc {
	t.Helper()
	dir := t.TempDir()
	return &proc{bin: Bin(t), dir: dir, logFile: filepath.Join(dir, "vault.log")}
}

// launch starts the process without waiting for it to listen. A goroutine
// waits for its exit; stop waits for that goroutine.
func (p *proc) launch(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Env = cleanEnv(p.dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("vaulttest: start %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// cleanEnv is the environment without VAULT_* variables and with HOME in dir.
func cleanEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir)
}

// waitHealth polls url's sys/health until ready accepts the answer's
// status, and fails t if the launched process exits first or the start
// timeout passes. The server runs on the real clock, so polling with a
// deadline is the only way to wait for it.
func (p *proc) waitHealth(t testing.TB, url string, ready func(status int) bool) {
	t.Helper()
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if ready(resp.StatusCode) {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("vaulttest: vault (%s) exited during start:\n%s", url, p.Log())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: vault (%s) not ready after %v (last error %v):\n%s", url, startTimeout, err, p.Log())
		}
	}
}

// Log returns the tail of the server's log.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.logFile)
	return peerbin.LastLines(string(b), 40)
}

// running reports whether the process runs.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// stop sends the process SIGCONT (it may be paused) and sig and waits
// until it has exited, killing it after 15s. Stopping a stopped process
// does nothing.
func (p *proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// signal sends sig to the running process, if any.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Errorf("vaulttest: %v: %v", sig, err)
	}
}
