package deploy_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/stores"
)

const (
	unitFile      = "systemd/kes.service"
	containerFile = "container/Containerfile"
	execStart     = "/usr/local/bin/kes server --config /etc/kes/config.yml"
)

// kesBinary builds the kes binary once, with the build line of the
// Containerfile, and returns its path.
var kesBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kes-deploy-")
	if err != nil {
		return "", err
	}
	binDir = dir
	env, args, err := containerBuild()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kes")
	for i, a := range args {
		if a == "-o" {
			args[i+1] = bin
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the Containerfile builds from the repository root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
})

var binDir string // removed by TestMain

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// containerBuild returns the environment and the go arguments of the
// Containerfile's `RUN ... go build` line, which must name its output
// with -o.
func containerBuild() (env, args []string, err error) {
	b, err := os.ReadFile(containerFile)
	if err != nil {
		return nil, nil, err
	}
	var line string
	for l := range strings.Lines(string(b)) {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			if line != "" {
				return nil, nil, fmt.Errorf("%s: more than one go build line", containerFile)
			}
			line = strings.TrimSpace(strings.TrimPrefix(l, "RUN "))
		}
	}
	if line == "" || strings.ContainsAny(line, `"'\$&|;`) {
		return nil, nil, fmt.Errorf("%s: want one plain `RUN [VAR=value ...] go build ... -o PATH ./cmd/kes` line, got %q", containerFile, line)
	}
	words := strings.Fields(line)
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	o := slices.Index(words, "-o")
	if len(words) < 2 || words[0] != "go" || words[1] != "build" || o < 0 || o+2 >= len(words) || words[len(words)-1] != "./cmd/kes" {
		return nil, nil, fmt.Errorf("%s: want `go build ... -o PATH ./cmd/kes`, got %q", containerFile, line)
	}
	return env, words[1:], nil
}

// serviceSettings returns the [Service] section of the unit as its
// key=value lines, in order.
func serviceSettings(t *testing.T, unit []byte) [][2]string {
	t.Helper()
	var out [][2]string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: line %q is not key=value", unitFile, l)
			}
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// TestUnitHardening: the unit keeps every hardening setting, so that none
// is dropped silently (the unit's comments and docs/systemd.md say why
// each one leaves the server working).
func TestUnitHardening(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, kv := range serviceSettings(t, unit) {
		got[kv[0]] = append(got[kv[0]], kv[1])
	}
	want := map[string][]string{
		"Type":                    {"exec"}, // the server does not speak sd_notify
		"User":                    {"kes"},
		"Group":                   {"kes"},
		"ExecStart":               {execStart},
		"ExecReload":              {"/bin/kill -HUP $MAINPID"}, // the server reloads on SIGHUP
		"Restart":                 {"on-failure"},
		"StateDirectory":          {"kes"},
		"StateDirectoryMode":      {"0700"},
		"UMask":                   {"0077"},
		"LimitMEMLOCK":            {"64M"},   // the locked key arena
		"LimitNOFILE":             {"16384"}, // api.MaxConns and more
		"NoNewPrivileges":         {"yes"},
		"CapabilityBoundingSet":   {""},
		"AmbientCapabilities":     {""},
		"ProtectSystem":           {"strict"},
		"ProtectHome":             {"yes"},
		"PrivateTmp":              {"yes"},
		"PrivateDevices":          {"yes"},
		"ProtectKernelTunables":   {"yes"},
		"ProtectKernelModules":    {"yes"},
		"ProtectKernelLogs":       {"yes"},
		"ProtectControlGroups":    {"yes"},
		"ProtectClock":            {"yes"},
		"ProtectHostname":         {"yes"},
		"ProtectProc":             {"invisible"},
		"RestrictNamespaces":      {"yes"},
		"RestrictRealtime":        {"yes"},
		"RestrictSUIDSGID":        {"yes"},
		"RemoveIPC":               {"yes"},
		"LockPersonality":         {"yes"},
		"MemoryDenyWriteExecute":  {"yes"},
		"RestrictAddressFamilies": {"AF_INET AF_INET6 AF_UNIX AF_NETLINK"},
		"SystemCallArchitectures": {"native"},
		"SystemCallFilter":        {"@system-service", "~@privileged"},
		"SystemCallErrorNumber":   {"EPERM"},
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s: %s = %q, want %q", unitFile, k, got[k], w)
		}
	}
	// No setting may undo one of the above later on, and nothing may add
	// privileges back.
	for _, k := range []string{"ReadWritePaths", "PrivateNetwork", "Capabilities", "PermissionsStartOnly"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s: unexpected %s=%q", unitFile, k, v)
		}
	}
}

// systemdAnalyze returns the path of systemd-analyze, failing the test
// with a hint when it is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v); install it: apt-get install systemd", err)
	}
	return p
}

// verify runs `systemd-analyze verify` on unit, written to a temporary
// folder with its ExecStart pointing at bin, and returns its output.
func verify(t *testing.T, unit []byte, bin string) (string, error) {
	t.Helper()
	if !bytes.Contains(unit, []byte("ExecStart="+execStart+"\n")) {
		t.Fatalf("%s: no line ExecStart=%s", unitFile, execStart)
	}
	unit = bytes.Replace(unit, []byte("ExecStart=/usr/local/bin/kes "), []byte("ExecStart="+bin+" "), 1)
	path := filepath.Join(t.TempDir(), "kes.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(systemdAnalyze(t), "verify", path).CombinedOutput()
	return string(out), err
}

// TestUnitVerifies: systemd-analyze verify accepts the unit with no
// warning at all (it reports unknown keys and bad values as warnings with
// exit code 0, so any output fails the test). The unit's ExecStart is
// pointed at a freshly built kes, since verify checks that it exists. The
// user kes need not exist for verify.
func TestUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := kesBinary()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := verify(t, unit, bin); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}

	// The verification is not vacuous: a mistyped key and a bad value are
	// reported.
	for _, bad := range [][2]string{
		{"NoNewPrivileges=yes", "NoNewPrivilege=yes"},
		{"ProtectSystem=strict", "ProtectSystem=strictt"},
	} {
		broken := bytes.Replace(unit, []byte(bad[0]), []byte(bad[1]), 1)
		if out, _ := verify(t, broken, bin); out == "" {
			t.Errorf("systemd-analyze verify reported nothing for %s", bad[1])
		}
	}

	// The command line of ExecStart is one the binary takes. (kes server
	// --help exits with status 2, so only its text counts.)
	out, _ := exec.Command(bin, "server", "--help").CombinedOutput()
	if !regexp.MustCompile(`(?m)^\s+--config string\s`).Match(out) {
		t.Fatalf("kes server --help: want a --config flag in:\n%s", out)
	}
}

// TestContainerBuild: the Containerfile's go build line, run here, makes a
// static binary (no ELF interpreter, no shared library: distroless static
// and scratch have no libc) built with -trimpath, which runs.
func TestContainerBuild(t *testing.T) {
	bin, err := kesBinary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: the binary has an ELF interpreter: it is not static", containerFile)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s: the binary needs shared libraries %v (%v)", containerFile, libs, err)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("%s: build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", containerFile, settings["CGO_ENABLED"], settings["-trimpath"])
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "Version") {
		t.Fatalf("kes --version: %v\n%s", err, out)
	}
}

// TestContainerImage: the builder is the Go release go.mod asks for, and
// the final stage is distroless static (or scratch), runs as the non-root
// user 65532, exposes 7373 and starts the server with the same
// configuration path as the systemd unit.
func TestContainerImage(t *testing.T) {
	b, err := os.ReadFile(containerFile)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	var stages [][]string // instructions per stage
	for l := range strings.Lines(string(b)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", containerFile, l)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], l)
	}
	if len(stages) != 2 {
		t.Fatalf("%s: %d stages, want 2 (build and final)", containerFile, len(stages))
	}
	if want := "FROM golang:" + string(m[1]) + " AS build"; stages[0][0] != want {
		t.Errorf("%s: builder %q, want %q (go.mod's release)", containerFile, stages[0][0], want)
	}
	final := stages[1]
	if final[0] != "FROM gcr.io/distroless/static-debian12:nonroot" && final[0] != "FROM scratch" {
		t.Errorf("%s: final stage %q, want distroless static nonroot or scratch", containerFile, final[0])
	}
	var users []string
	for _, l := range final {
		if strings.HasPrefix(l, "USER ") {
			users = append(users, strings.TrimPrefix(l, "USER "))
		}
	}
	if len(users) != 1 || users[0] != "65532:65532" {
		t.Errorf("%s: final stage USER %q, want exactly one USER 65532:65532", containerFile, users)
	}
	for _, want := range []string{
		"COPY --from=build /out/kes /kes",
		"EXPOSE 7373",
		`ENTRYPOINT ["/kes"]`,
		`CMD ["server", "--config", "/etc/kes/config.yml"]`,
	} {
		if !slices.Contains(final, want) {
			t.Errorf("%s: final stage has no line %s", containerFile, want)
		}
	}
}

// TestDocsConfig: the configuration docs/systemd.md shows is one the server
// accepts, and it keeps the fs store inside the unit's only writable
// folder.
func TestDocsConfig(t *testing.T) {
	doc, err := os.ReadFile("../docs/systemd.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(m) != 1 {
		t.Fatalf("docs/systemd.md: %d yaml blocks, want 1", len(m))
	}
	f, err := config.Parse(m[0][1], "docs/systemd.md", &config.Schema{KeyStores: stores.All, Routes: api.Paths()})
	if err != nil {
		t.Fatalf("docs/systemd.md: the configuration does not load: %v", err)
	}
	if len(f.Notices) > 0 {
		t.Errorf("docs/systemd.md: the configuration has ignored keys: %v", f.Notices)
	}
	if b := f.KeyStore.Banner(); !strings.HasPrefix(b, "Filesystem: /var/lib/kes/") {
		t.Errorf("docs/systemd.md: key store %q, want an fs store under /var/lib/kes, the unit's StateDirectory", b)
	}
}
