// Package docs_test runs the shell blocks of the documentation (README.md and
// docs/**/*.md) against a development server, so a command that fails as
// written fails CI.
//
// A fenced block tagged sh, bash, shell or console runs unless the line
// before it (blank lines aside) is a marker with a reason:
//
//	<!-- norun: needs a real AWS account -->
//
// All runnable blocks of one page run in order in one bash session
// (bash -euo pipefail) in a fresh temporary folder, against a fresh
// `kes server --dev`; a block sees what the blocks before it on the page
// set. The session starts with the environment a reader has after the
// page's setup: KES_SERVER and KES_API_KEY of the dev server, DIR the folder
// of its certificates (as the README names it), the kes binary on PATH, and
// a curl that fails on an HTTP error status. bash runs the blocks as a
// script, so an alias a page defines is not expanded (kes is the built
// binary). A block may start a server in the background with its output
// sent to a file (an inherited stdout keeps the test waiting); the test kills
// whatever the page left running when the page ends.
// Placeholders the reader fills in by hand are replaced by the test (see
// placeholders). A page that names kes-1:7373 also gets three nodes of a
// cluster (each its own fs store, all the dev server's admin), and a page
// that runs "vault server" finds the tests' Vault binary on PATH. A console
// block runs its "$ " lines. A line "! cmd" checks that cmd fails.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/vaulttest"
)

// repoRoot is the module root, seen from this package's folder.
const repoRoot = ".."

// block is one fenced shell block of a page.
type block struct {
	file   string // path relative to the repository root
	line   int    // line of the opening fence, 1-based
	lang   string
	text   string // the block's lines, fences excluded
	norun  bool
	reason string // why it does not run (norun)
}

var (
	fenceRE = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([^\\s`]*)(.*)$")
	norunRE = regexp.MustCompile(`^<!--\s*norun\b:?(.*?)-->$`)
	shells  = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}
)

// parse returns the shell blocks of one page. It fails on an unclosed
// fence, a norun marker without a reason and a marker that is not followed
// by a shell block.
func parse(file string, data []byte) ([]block, error) {
	var (
		blocks  []block
		open    *block // the shell block being read
		fence   string // the opening fence of any open block
		body    []string
		pending *block // a norun marker waiting for its block
		pendAt  int
	)
	for i, l := range strings.Split(string(data), "\n") {
		n := i + 1
		if fence != "" {
			if t := strings.TrimSpace(l); strings.HasPrefix(t, fence[:3]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
				if open != nil {
					open.text = strings.Join(body, "\n") + "\n"
					blocks = append(blocks, *open)
				}
				fence, open, body = "", nil, nil
				continue
			}
			if open != nil {
				body = append(body, l)
			}
			continue
		}
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			fence = m[1]
			lang := strings.ToLower(m[2])
			if shells[lang] {
				open = &block{file: file, line: n, lang: lang}
				if pending != nil {
					open.norun, open.reason = true, pending.reason
					pending = nil
				}
			}
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: norun marker not followed by a shell block", file, pendAt)
			}
			continue
		}
		t := strings.TrimSpace(l)
		if m := norunRE.FindStringSubmatch(t); m != nil {
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: norun marker not followed by a shell block", file, pendAt)
			}
			reason := strings.TrimSpace(m[1])
			if reason == "" {
				return nil, fmt.Errorf("%s:%d: norun marker without a reason (<!-- norun: why -->)", file, n)
			}
			pending, pendAt = &block{reason: reason}, n
			continue
		}
		if t != "" && pending != nil {
			return nil, fmt.Errorf("%s:%d: norun marker not followed by a shell block", file, pendAt)
		}
	}
	if fence != "" {
		return nil, fmt.Errorf("%s: fenced block not closed", file)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: norun marker not followed by a shell block", file, pendAt)
	}
	return blocks, nil
}

// commands returns what a block runs: the block itself, or for a console
// block the "$ " lines without their prompt.
func (b block) commands() (string, error) {
	if b.lang != "console" {
		return b.text, nil
	}
	var cmds []string
	for _, l := range strings.Split(b.text, "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) == 0 {
		return "", fmt.Errorf("%s:%d: console block without a \"$ \" line", b.file, b.line)
	}
	return strings.Join(cmds, "\n") + "\n", nil
}

// pages returns the documentation pages, relative to the repository root.
func pages(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(repoRoot, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestParse(t *testing.T) {
	page := "# t\n\n```sh\necho a\n```\n\n<!-- norun: needs a cluster -->\n\n```bash\nkubectl get pods\n```\n" +
		"```yaml\na: 1\n```\n````console\n$ echo b\nb\n```\n````\n"
	blocks, err := parse("t.md", []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 {
		t.Fatalf("got %d blocks, want 3: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; b.line != 3 || b.norun || b.text != "echo a\n" {
		t.Errorf("block 0: %+v", b)
	}
	if b := blocks[1]; b.line != 9 || !b.norun || b.reason != "needs a cluster" {
		t.Errorf("block 1: %+v", b)
	}
	if c, err := blocks[2].commands(); err != nil || c != "echo b\n" {
		t.Errorf("console block commands = %q, %v; want \"echo b\\n\"", c, err)
	}

	for name, bad := range map[string]string{
		"no reason":    "<!-- norun -->\n```sh\nx\n```\n",
		"empty reason": "<!-- norun:  -->\n```sh\nx\n```\n",
		"no block":     "<!-- norun: why -->\ntext\n```sh\nx\n```\n",
		"not shell":    "<!-- norun: why -->\n```yaml\nx\n```\n",
		"at the end":   "<!-- norun: why -->\n",
		"unclosed":     "```sh\nx\n",
	} {
		if _, err := parse("t.md", []byte(bad)); err == nil {
			t.Errorf("%s: parse accepted %q", name, bad)
		}
	}
}

func TestExpectFailures(t *testing.T) {
	for _, tt := range []struct {
		name, script string
		ok           bool
	}{
		{"fails as the page says", "! false # refused\necho after\n", true},
		{"succeeds", "! true # refused, says the page\n", false},
		{"indented in a subshell", "(\n  ! false\n)\n", true},
		{"quote in the command", "! test 'a' = 'b'\n", true},
		{"continued line untouched", "! false \\\n  --flag\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", expectFailures(tt.script))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.ok {
				t.Errorf("script %q: error %v, want ok=%v\n%s", expectFailures(tt.script), err, tt.ok, out)
			}
		})
	}
}

// TestNorunMarkers checks that every page parses (every norun marker has a
// reason and precedes a shell block) and that every shell block, norun ones
// included, is valid bash syntax.
func TestNorunMarkers(t *testing.T) {
	for _, p := range pages(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parse(p, data)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, b := range blocks { // norun blocks too: their syntax at least
			cmds, err := b.commands()
			if err != nil {
				t.Error(err)
				continue
			}
			check := exec.Command("bash", "-n")
			check.Stdin = strings.NewReader(cmds)
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("%s:%d: bash -n: %v\n%s", b.file, b.line, err, out)
			}
		}
	}
}

// TestShellBlocks runs every runnable shell block of the docs.
func TestShellBlocks(t *testing.T) {
	type page struct {
		file   string
		blocks []block
	}
	var run []page
	total, norun := 0, 0
	for _, p := range pages(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parse(p, data)
		if err != nil {
			t.Fatal(err)
		}
		var runnable []block
		for _, b := range blocks {
			total++
			if b.norun {
				norun++
				continue
			}
			runnable = append(runnable, b)
		}
		if len(runnable) > 0 {
			run = append(run, page{p, runnable})
		}
	}
	if total-norun == 0 {
		t.Fatalf("none of the %d shell blocks of the docs runs", total)
	}
	t.Logf("%d shell blocks: %d run, %d marked norun", total, total-norun, norun)

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kes"), "./cmd/kes")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kes: %v\n%s", err, out)
	}
	for _, p := range run {
		t.Run(p.file, func(t *testing.T) { runPage(t, bin, p.file, p.blocks) })
	}
}

// devServer is a running `kes server`: with --dev, its API key and the
// folder of its certificates.
type devServer struct {
	addr, apiKey, dir string
}

// startDevServer starts `kes server --dev` on a free loopback port and
// waits for its banner; the server is stopped when the test ends.
func startDevServer(t *testing.T, bin string) devServer {
	t.Helper()
	s := startServer(t, bin, "--dev", "--addr", "127.0.0.1:0")
	if s.dir == "" || s.apiKey == "" {
		t.Fatalf("dev server banner lacks a line: %+v", s)
	}
	return s
}

// clusterNodes is how many nodes a page that names kes-1:7373 gets.
const clusterNodes = 3

// startCluster starts clusterNodes servers, each with its own fs store,
// dev's server certificate and dev's admin: nodes of one cluster, as
// docs/policy-drift.md assumes.
func startCluster(t *testing.T, bin string, dev devServer) []devServer {
	t.Helper()
	admin, err := kes.ParseAPIKey(dev.apiKey)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []devServer
	for range clusterNodes {
		dir := t.TempDir()
		for _, f := range []string{"server.crt", "server.key"} {
			data, err := os.ReadFile(filepath.Join(dev.dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		config := fmt.Sprintf("address: 127.0.0.1:0\nadmin:\n  identity: %s\ntls:\n  key: %s\n  cert: %s\nkeystore:\n  fs:\n    path: %s\n",
			admin.Identity(), filepath.Join(dir, "server.key"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "keys"))
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startServer(t, bin, "--config", filepath.Join(dir, "config.yml")))
	}
	return nodes
}

// startServer starts `kes server` with args and waits for its banner; the
// server is stopped when the test ends.
func startServer(t *testing.T, bin string, args ...string) devServer {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "kes"), append([]string{"server"}, args...)...)
	cmd.Env = readerEnv(bin, t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	up := make(chan struct{}) // closed once the banner is read
	done := make(chan struct{})
	go func() { // ends when the server's stdout closes, at its exit
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-up: // the rest (audit log) is dropped
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-up:
		default:
			close(up) // let the reader drain the rest
		}
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		_ = cmd.Wait()
	})

	var (
		s       devServer
		dirRE   = regexp.MustCompile(`certificate are in (\S+)$`)
		apiRE   = regexp.MustCompile(`^API\s+· https://(\S+)$`)
		keyRE   = regexp.MustCompile(`^API Key\s+(\S+)$`)
		readyRE = regexp.MustCompile(`^=> Server is up and running`)
		timeout = time.After(60 * time.Second)
	)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kes server %s exited before it was up", strings.Join(args, " "))
			}
			if m := dirRE.FindStringSubmatch(l); m != nil {
				s.dir = m[1]
			}
			if m := apiRE.FindStringSubmatch(l); m != nil && s.addr == "" {
				s.addr = m[1]
			}
			if m := keyRE.FindStringSubmatch(l); m != nil {
				s.apiKey = m[1]
			}
			if readyRE.MatchString(l) {
				close(up)
				if s.addr == "" {
					t.Fatalf("kes server %s: banner without an API line", strings.Join(args, " "))
				}
				return s
			}
		case <-timeout:
			t.Fatalf("kes server %s: no banner within 60s", strings.Join(args, " "))
		}
	}
}

// readerEnv is the process environment without any KES setting of the
// caller's, with bin first on PATH and home as HOME.
func readerEnv(bin, home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KES_") || strings.HasPrefix(k, "MINIO_KES_") || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+home)
}

// linkVault puts the tests' Vault binary (scripts/install-vault.sh, or
// $OPENKES_VAULT_BIN) on the page's PATH as vault, beside kes, for a page
// that starts a Vault server.
func linkVault(t *testing.T, bin string) {
	t.Helper()
	link := filepath.Join(bin, "vault")
	if _, err := os.Lstat(link); err == nil {
		return
	}
	if err := os.Symlink(vaulttest.Bin(t), link); err != nil {
		t.Fatal(err)
	}
}

// placeholders are what the docs ask the reader to fill in, and what the
// test fills in: the dev server's API key, its address where a page names
// the default one (the test server listens on a free port instead), and
// the cluster nodes' addresses for kes-1:7373, kes-2:7373, ...
func placeholders(s devServer, nodes []devServer) *strings.Replacer {
	pairs := []string{"kes:v1:...", s.apiKey, "127.0.0.1:7373", s.addr}
	for i, n := range nodes {
		pairs = append(pairs, fmt.Sprintf("kes-%d:7373", i+1), n.addr)
	}
	return strings.NewReplacer(pairs...)
}

// negatedRE matches a line that runs one command negated, "! cmd": the
// pages' way to show a command that fails (a refused request, a broken
// configuration).
var negatedRE = regexp.MustCompile(`^(\s*)! (.*)$`)

// expectFailures turns every "! cmd" line of a script into a check that cmd
// fails: bash -e ignores the status of a negated command, so without it a
// command the page says is refused could succeed unnoticed. The command
// stays on a line of its own, so a trailing comment still ends at the line's
// end. A line continued with a backslash is left as it is.
func expectFailures(cmds string) string {
	lines := strings.Split(cmds, "\n")
	for i, l := range lines {
		m := negatedRE.FindStringSubmatch(l)
		if m == nil || strings.HasSuffix(strings.TrimSpace(l), "\\") {
			continue
		}
		lines[i] = fmt.Sprintf("%[1]sif {\n%[1]s  %[2]s\n%[1]s}; then echo 'the page says this fails, but it succeeded: %[3]s' >&2; exit 1; fi",
			m[1], m[2], strings.ReplaceAll(m[2], "'", `'\''`))
	}
	return strings.Join(lines, "\n")
}

// pageTimeout bounds one page's shell session. A page takes a few seconds
// (the Vault page about ten, most of it the vault CLI's start-up); the
// bound leaves room for a machine under heavy load.
const pageTimeout = 120 * time.Second

// blockMark precedes every block's commands in a page's script, so that
// the output tells which block ran last.
const blockMark = "@@docs-block "

func runPage(t *testing.T, bin, file string, blocks []block) {
	s := startDevServer(t, bin)
	var nodes []devServer
	for _, b := range blocks {
		if strings.Contains(b.text, "kes-1:7373") {
			nodes = startCluster(t, bin, s)
			break
		}
	}
	for _, b := range blocks {
		if strings.Contains(b.text, "vault server") {
			linkVault(t, bin)
			break
		}
	}
	work := t.TempDir()
	repl := placeholders(s, nodes)
	// curl exits 0 on an HTTP error status unless told otherwise; the
	// reader sees the error body, the test needs the exit code.
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".curlrc"), []byte("fail-with-body\nsilent\nshow-error\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var script strings.Builder
	for _, b := range blocks {
		cmds, err := b.commands()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&script, "echo '%s%s:%d'\n%s", blockMark, b.file, b.line, expectFailures(repl.Replace(cmds)))
	}
	scriptFile := filepath.Join(t.TempDir(), "page.sh")
	if err := os.WriteFile(scriptFile, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), pageTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", scriptFile)
	cmd.Dir = work
	cmd.Env = append(readerEnv(bin, home), "KES_SERVER="+s.addr, "KES_API_KEY="+s.apiKey, "DIR="+s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a block's background commands die with it
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// A page may start a server in the background (its output sent to a
	// file); whatever the outcome, nothing of the page outlives it.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err == nil {
		return
	}
	// The failing block is the last one whose mark was printed.
	where, output := file, out.String()
	if i := strings.LastIndex(output, blockMark); i >= 0 {
		rest := output[i+len(blockMark):]
		where, output, _ = strings.Cut(rest, "\n")
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", pageTimeout, err)
	}
	t.Errorf("%s: the block fails: %v\noutput of the block:\n%s", where, err, output)
}
