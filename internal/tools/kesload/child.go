package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds the wait for a child server to answer.
const readyTimeout = 30 * time.Second

// envRunMain, when set to 1, makes a test binary run main instead of its
// tests (see TestMain); kesload sets it for the bare server it re-executes,
// which is harmless for the real binary.
const envRunMain = "KESLOAD_RUN_MAIN"

// child is a server process started by kesload.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr string        // file that holds the child's stderr
	done   chan struct{} // closed when the process has exited
	err    error         // the result of Wait; valid after done
}

// envKESEnv holds extra environment variables for the kes servers only,
// space-separated NAME=VALUE pairs (e.g. "GOGC=200 GODEBUG=..."), to try
// runtime settings without rebuilding kes.
const envKESEnv = "KESLOAD_KES_ENV"

// startChild starts path with args and extra environment variables. The
// child's stdout goes to stdout, or to /dev/null if it is nil; its stderr
// to dir/<name>.stderr. No VAULT_* variable of kesload's environment
// reaches it: Vault, and the Vault SDK in kes, would read them.
func startChild(name, path string, args, env []string, stdout *os.File, dir string) (*child, error) {
	errPath := filepath.Join(dir, name+".stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = errFile
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, envRunMain+"=1"), env...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		errFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stderr: errPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		errFile.Close()
		close(c.done)
	}()
	return c, nil
}

// Pid returns the child's process ID.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// Stop kills the child and waits until it has exited. It may be called
// more than once.
func (c *child) Stop() {
	c.cmd.Process.Kill() // fails only if it has exited already
	<-c.done
}

// exitError describes the exit of a child that should still run, with the
// end of its stderr.
func (c *child) exitError() error {
	tail, _ := os.ReadFile(c.stderr)
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s exited (%v); stderr:\n%s", c.name, c.err, bytes.TrimSpace(tail))
}

// waitReady calls probe until it succeeds, the child exits or readyTimeout
// passes.
func (c *child) waitReady(ctx context.Context, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error // of the last probe that did not time out
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-c.done:
			return c.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", c.name, readyTimeout, last)
		case <-tick.C:
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago; the child that gets it binds it soon after.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
