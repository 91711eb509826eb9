package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// cliRun runs the kes command line in-process with the given variables.
func cliRun(t *testing.T, vars map[string]string, terminal bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv:     func(k string) string { return vars[k] },
		LookupEnv:  func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		IsTerminal: func() bool { return terminal },
	}
	code = run(t.Context(), env, args)
	return out.String(), errOut.String(), code
}

func TestCompletionProtocol(t *testing.T) {
	for _, tt := range []struct {
		shell, line, point, want string
	}{
		{"/bin/bash", "kes ke", "", "key\n"},
		{"/usr/bin/zsh", "kes s", "", "server\nstatus\n"},
		{"/bin/bash", "kes c", "", "completion\n"},
		{"/bin/bash", "kes key li", "", "list\n"},
		// drift is the OpenKES extension `kes policy drift` (docs/policy-drift.md).
		{"/bin/bash", "kes policy ", "", "add\nassign\ncreate\ndelete\ndrift\ninfo\nlist\nls\nrm\nshow\n"},
		{"/bin/bash", "kes policy drift --t", "", "--timeout\n"},
		{"/bin/bash", "kes key cr", "", "create\n"},
		{"/bin/bash", "kes key list", "", "list\n"},
		{"/bin/bash", "kes policy rm -k --ins", "", "--insecure\n"},
		{"/bin/bash", "kes ls -", "", "--api-key\n--color\n--help\n--identity\n--insecure\n--json\n--policy\n--server\n-a\n-h\n-i\n-k\n-p\n-s\n"},
		{"/bin/bash", "kes identity n and more", "14", "new\n"},
	} {
		vars := map[string]string{"SHELL": tt.shell, "COMP_LINE": tt.line, "COMP_POINT": tt.point}
		stdout, stderr, code := cliRun(t, vars, false)
		if code != 0 || stdout != tt.want {
			t.Errorf("COMP_LINE=%q: exit %d, %q (%s), want %q", tt.line, code, stdout, stderr, tt.want)
		}
	}
	// Other shells do not complete: kes prints its usage.
	if _, stderr, code := cliRun(t, map[string]string{"SHELL": "/bin/fish", "COMP_LINE": "kes ke"}, false); code != 2 || !strings.HasPrefix(stderr, "Usage:") {
		t.Errorf("fish: exit %d, %q", code, stderr)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := cliRun(t, nil, false, "completion", shell)
		if code != 0 || !strings.Contains(stdout, "kes") || len(stdout) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes, %s", shell, code, len(stdout), stderr)
		}
	}
}

func TestAutoCompletion(t *testing.T) {
	home := t.TempDir()
	for _, shell := range []string{"/bin/zsh", "/bin/bash"} {
		vars := map[string]string{"SHELL": shell, "HOME": home}
		for i := range 2 {
			_, stderr, code := cliRun(t, vars, false, "--auto-completion")
			want := "Auto-completion installed in "
			if i == 1 {
				want = "Auto-completion is already installed in "
			}
			if code != 0 || !strings.HasPrefix(stderr, want) {
				t.Errorf("%s run %d: exit %d, %q", shell, i, code, stderr)
			}
		}
	}
	zshrc, _ := os.ReadFile(filepath.Join(home, ".zshrc"))
	bashrc, _ := os.ReadFile(filepath.Join(home, ".bashrc"))
	if !strings.HasPrefix(string(zshrc), "\nautoload -U +X bashcompinit && bashcompinit\ncomplete -o default -C /") || strings.Count(string(zshrc), "complete -o") != 1 {
		t.Errorf(".zshrc: %q", zshrc)
	}
	if !strings.HasPrefix(string(bashrc), "\ncomplete -o default -C /") || strings.Count(string(bashrc), "complete -o") != 1 {
		t.Errorf(".bashrc: %q", bashrc)
	}
	_, stderr, code := cliRun(t, map[string]string{"SHELL": "/bin/fish", "HOME": home}, false, "--auto-completion")
	if code != 1 || stderr != "Error: auto-completion is not available for your shell 'fish'\n" {
		t.Errorf("fish: exit %d, %q", code, stderr)
	}
}

func TestRoundLatency(t *testing.T) {
	for _, tt := range []struct{ in, want time.Duration }{
		{1234567890, 1200 * time.Millisecond},
		{12345678, 12 * time.Millisecond},
		{1234567, 1200 * time.Microsecond},
		{12345, 12 * time.Microsecond},
		{1234, 1234},
	} {
		if got := roundLatency(tt.in); got != tt.want {
			t.Errorf("roundLatency(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{formatBytes(999), "999B"},
		{formatBytes(5_200_000), "5.2MB"},
		{formatBytes(1_000), "1.0KB"},
		{formatBytes(3_000_000_000_000_000_000), "3.0EB"},
		{formatUptime(3*24*time.Hour + 5*time.Hour + time.Minute), "3 days 5 hours"},
		{formatUptime(2*time.Hour + 59*time.Minute), "2 hours"},
		{formatUptime(3 * time.Minute), "3 minutes"},
		{formatUptime(42 * time.Second), "42 seconds"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestGlobPrefix(t *testing.T) {
	for _, tt := range []struct {
		pattern, prefix string
		matches, misses []string
	}{
		{"*", "", nil, nil},
		{"my-*", "my-", nil, nil},
		{"my-key", "my-key", []string{"my-key"}, []string{"my-key2"}},
		{"a?c*", "a", []string{"abc", "abcd"}, []string{"ac", "xbc"}},
		{"k[0-9]", "k", []string{"k1"}, []string{"k12", "ka"}},
	} {
		prefix, match := globPrefix(tt.pattern)
		if prefix != tt.prefix {
			t.Errorf("%s: prefix %q, want %q", tt.pattern, prefix, tt.prefix)
		}
		for _, n := range tt.matches {
			if match != nil && !match(n) {
				t.Errorf("%s does not match %s", tt.pattern, n)
			}
		}
		for _, n := range tt.misses {
			if match == nil || match(n) {
				t.Errorf("%s matches %s", tt.pattern, n)
			}
		}
	}
}

func TestAuditRow(t *testing.T) {
	e := &kes.AuditEvent{
		Time:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local),
		Request:  kes.AuditRequest{Path: "/v1/key/create/my-key", Identity: "0123456789abcdef0123456789abcdef"},
		Response: kes.AuditResponse{StatusCode: 403, Time: 1234567},
	}
	p := &printer{}
	want := "03:04:05    403     0123456789abcdef0123    <unknown>          /v1/key/create/my-key             1.2ms"
	if got := p.auditRow(e); got != want {
		t.Errorf("\ngot  %q\nwant %q", got, want)
	}
	p.color = true
	if got := p.auditRow(e); !strings.Contains(got, ansiRed+"403"+ansiReset) {
		t.Errorf("styled row %q", got)
	}
}

func TestReadLine(t *testing.T) {
	r := strings.NewReader("one\r\ntwo\nthree")
	for _, want := range []string{"one", "two", "three"} {
		if got, err := readLine(r); err != nil || string(got) != want {
			t.Errorf("readLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readLine(r); err == nil {
		t.Error("readLine at EOF: no error")
	}
}

// TestMetric: without a terminal, one JSON object per scrape with the keys
// of spec cli.md §10; on a terminal, a dashboard redrawn per tick.
func TestMetric(t *testing.T) {
	addr, admin := startTestServer(t)
	vars := map[string]string{"KES_SERVER": addr, "KES_API_KEY": admin.Secret()}
	lines := startKes(t, vars, "metric", "-k", "--rate", "50ms")
	keys := []string{"kes_http_request_success", "kes_http_request_error", "kes_http_request_failure", "kes_http_request_active",
		"kes_log_audit_events", "kes_log_error_events", "kes_http_response_time", "kes_system_up_time", "kes_system_num_cpu",
		"kes_system_num_cpu_used", "kes_system_num_threads", "kes_system_mem_heap_used", "kes_system_mem_heap_objects", "kes_system_mem_stack_used"}
	for range 2 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(<-lines), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("no %s in %v", k, m)
			}
		}
		if len(m) != len(keys) {
			t.Errorf("%d keys, want %d", len(m), len(keys))
		}
		var hist map[string]uint64
		if err := json.Unmarshal(m["kes_http_response_time"], &hist); err != nil || hist["10000000"] == 0 && len(hist) == 0 {
			t.Errorf("kes_http_response_time: %s %v", m["kes_http_response_time"], err)
		}
	}

	var out lockedBuffer
	env := &Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out,
		LookupEnv:  func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		IsTerminal: func() bool { return true },
	}
	ctx, cancel := context.WithCancel(t.Context())
	ticks := make(chan time.Time)
	done := make(chan error, 1)
	go func() { done <- metric(ctx, env, &connFlags{Insecure: true}, time.Second, ticks) }()
	ticks <- time.Now() // first frame drawn
	ticks <- time.Now() // second frame drawn
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("metric: %v", err)
	}
	s := out.String()
	if n := strings.Count(s, "\x1b[H\x1b[2J"); n < 2 {
		t.Errorf("%d frames, want ≥ 2:\n%s", n, s)
	}
	for _, want := range []string{"KES metrics", "https://" + addr, "Requests", "Latency", "Logs", "Uptime", "CPUs", "Memory", "/s"} {
		if !strings.Contains(s, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, s)
		}
	}
}

// lockedBuffer is a buffer that goroutines (a server's, a process's
// readers) write to while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
