package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openkes/kes"
)

// runCmd runs name with args in dir and returns its trimmed stdout; it fails
// the test if the command fails.
func runCmd(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// checkout clones the git checkout the test runs in into an empty folder
// and brings the working tree's changes over (modified, new and deleted
// files), so that a build there compiles the code under test. It returns
// the folder and the revision of HEAD.
//
// The go command records VCS data only where .git is a directory, not in a
// git worktree (where .git is a file), hence the clone; a clone is also
// what users build from.
func checkout(t *testing.T) (src, revision string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to build kes from a git checkout: install it (apt-get install git)")
	}
	top := runCmd(t, ".", os.Environ(), "git", "rev-parse", "--show-toplevel")
	src = filepath.Join(t.TempDir(), "openkes")
	runCmd(t, ".", os.Environ(), "git", "clone", "-q", top, src)
	revision = runCmd(t, src, os.Environ(), "git", "rev-parse", "HEAD")
	files := runCmd(t, top, os.Environ(), "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	for name := range strings.SplitSeq(files, "\x00") {
		if name == "" {
			continue
		}
		from, to := filepath.Join(top, name), filepath.Join(src, name)
		fi, err := os.Lstat(from)
		if errors.Is(err, os.ErrNotExist) {
			os.Remove(to)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return src, revision
}

// build builds kes in src with the extra go build flags. -buildvcs=auto is
// go build's default, given because a GOFLAGS setting may turn it off.
func build(t *testing.T, src string, flags ...string) (bin string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "kes")
	args := append([]string{"build", "-buildvcs=auto", "-o", bin}, flags...)
	runCmd(t, src, os.Environ(), "go", append(args, "./cmd/kes")...)
	return bin
}

// moduleVersion returns the main module version go recorded in bin.
func moduleVersion(t *testing.T, bin string) string {
	t.Helper()
	for line := range strings.SplitSeq(runCmd(t, ".", os.Environ(), "go", "version", "-m", bin), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	t.Fatalf("go version -m %s: no main module", bin)
	return ""
}

// TestVersionFromGitCheckout: kes built by `go build` in a git checkout
// reports its module version and the checkout's revision, the same in
// `kes --version`, the server banner, GET /version and `kes status`. A
// release build that sets the version at link time (-ldflags -X) reports
// that version, with the revision of the checkout.
func TestVersionFromGitCheckout(t *testing.T) {
	src, revision := checkout(t)
	bin := build(t, src)
	modVersion := moduleVersion(t, bin)
	if modVersion == "" || modVersion == "(devel)" {
		t.Fatalf("go recorded module version %q for a build in a git checkout", modVersion)
	}
	want := modVersion + " commit=" + revision

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if got := runCmd(t, ".", env, bin, "--version"); !strings.HasPrefix(got, "Version    "+want+"\n") {
		t.Errorf("kes --version:\n%s\nwant first line: Version    %s", got, want)
	}

	lines := startBinary(t, bin, nil, "server", "--dev", "--addr", "127.0.0.1:0")
	dir := waitFor(t, lines, regexp.MustCompile(`certificate are in (\S+)$`))[1]
	if got := waitFor(t, lines, regexp.MustCompile(`^Version\s+(.*)$`))[1]; got != want {
		t.Errorf("banner: Version %s, want %s", got, want)
	}
	serverURL := waitFor(t, lines, apiLine)[1]
	apiKey := waitFor(t, lines, regexp.MustCompile(`^API Key\s+(\S+)$`))[1]
	waitFor(t, lines, regexp.MustCompile(`^=> Server is up and running`))

	c := devClient(t, dir)
	resp, err := c.Get(serverURL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	var v kes.VersionResponse
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || v.Version != modVersion || v.Commit != revision {
		t.Errorf("GET /version: %d %+v (%v), want version %s commit %s", resp.StatusCode, v, err, modVersion, revision)
	}

	u, _ := url.Parse(serverURL)
	status := runCmd(t, ".", append(env, "KES_SERVER="+u.Host, "KES_API_KEY="+apiKey), bin, "status", "-k")
	if !regexp.MustCompile(`(?m)^  Version   ` + regexp.QuoteMeta(modVersion) + `$`).MatchString(status) {
		t.Errorf("kes status:\n%s\nwant the line: Version   %s", status, modVersion)
	}

	bin = build(t, src, "-ldflags", "-X github.com/openkes/kes/internal/version.version=2026-12-01T00-00-00Z")
	got := runCmd(t, ".", env, bin, "--version")
	if want := "Version    2026-12-01T00-00-00Z commit=" + revision + "\n"; !strings.HasPrefix(got, want) {
		t.Errorf("link-time version: kes --version:\n%s\nwant first line: %s", got, want)
	}
}
