// Package peerbin finds the binaries of the real servers the tests run
// against (Vault, kumo, local-kms): the path in an environment variable, or
// the one the repository's install script builds, caches and prints. A
// missing binary fails the test with a hint; it never skips.
//
// This package is imported by tests only.
package peerbin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Peer is one server binary, looked up once per test binary. Its fields
// must not change after the first call of Bin.
type Peer struct {
	Name   string // for messages, e.g. "Vault server"
	Env    string // the variable that may name the binary, e.g. OPENKES_VAULT_BIN
	Script string // the install script below scripts/, e.g. install-vault.sh
	// Args are the script's arguments, for a script that installs
	// several peers and prints the path of the one named (e.g. "nginx").
	Args []string

	once sync.Once
	path string
	err  error
}

// Bin returns the path of the binary or fails t.
func (p *Peer) Bin(t testing.TB) string {
	t.Helper()
	p.once.Do(func() { p.path, p.err = p.find() })
	if p.err != nil {
		t.Fatalf("no %s binary: %v\nhint: run scripts/%s (it prints the path) or set %s", p.Name, p.err, strings.Join(append([]string{p.Script}, p.Args...), " "), p.Env)
	}
	return p.path
}

func (p *Peer) find() (string, error) {
	if path := os.Getenv(p.Env); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s: %w", p.Env, err)
		}
		return path, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", p.Script)}, p.Args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/%s: %v: %s", p.Script, err, LastLines(stderr.String(), 20))
	}
	path := strings.TrimSpace(LastLines(string(out), 1))
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("scripts/%s printed %q: %w", p.Script, path, err)
	}
	return path, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// LastLines returns the last n lines of s, for quoting a peer's output in
// a test failure.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
