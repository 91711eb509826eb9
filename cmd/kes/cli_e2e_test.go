package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kesExec runs the built kes binary with only the variables in vars set
// (plus PATH and HOME) and returns its output and exit code.
func kesExec(t *testing.T, vars map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(kesBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// readJSONL reads a JSON-lines vector file into maps.
func readJSONL(t *testing.T, file string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cliVectors, file))
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]string
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		lines = append(lines, m)
	}
	if len(lines) == 0 {
		t.Fatalf("%s: no vectors", file)
	}
	return lines
}

// TestIdentityVectors: `kes identity of <cert>`, `kes identity of <key>`,
// `kes identity <key>` and `kes identity <key file>` print exactly the
// upstream values, without a newline (testdata/vectors/identities).
func TestIdentityVectors(t *testing.T) {
	check := func(want string, args ...string) {
		t.Helper()
		stdout, stderr, code := kesExec(t, nil, "", args...)
		if code != 0 || stdout != want {
			t.Errorf("kes %s = %q (exit %d, %s), want %q", strings.Join(args, " "), stdout, code, stderr, want)
		}
	}
	var all, ids []string
	for _, v := range readJSONL(t, "identities.jsonl") {
		cert := filepath.Join(cliVectors, "..", v["cert_file"])
		check(v["identity"], "identity", "of", cert)
		check(v["identity"], "identity", cert)
		all, ids = append(all, cert), append(ids, v["identity"])
	}
	check(strings.Join(ids, "\n"), append([]string{"identity", "of"}, all...)...)
	for _, v := range readJSONL(t, "apikeys.jsonl") {
		check(v["identity"], "identity", v["api_key"])
		check(v["identity"], "identity", "of", v["api_key"])
		if keyFile := v["key_file"]; keyFile != "" {
			check(v["kes_identity_of_key_file"], "identity", filepath.Join(cliVectors, "..", keyFile))
			check(v["identity"], "identity", "of", filepath.Join(cliVectors, "..", v["cert_file"]))
		}
	}
}

// TestUsage: exit codes and texts of usage errors (spec cli.md §1, §2).
func TestUsage(t *testing.T) {
	noKey := map[string]string{"KES_SERVER": "127.0.0.1:1"}
	for _, tt := range []struct {
		name   string
		vars   map[string]string
		args   []string
		code   int
		stderr string // regexp
	}{
		{"no args", nil, nil, 2, `(?s)^Usage:\n  kes \[flags\].*key +Manage`},
		{"help", nil, []string{"--help"}, 2, `^Usage:`},
		{"short help", nil, []string{"-h"}, 2, `^Usage:`},
		{"sub-command help", nil, []string{"key", "create", "--help"}, 2, `^Usage:\n  kes key create <name>\.\.\. \[flags\]`},
		{"group", nil, []string{"policy"}, 2, `Available Commands:`},
		{"help command", nil, []string{"help", "identity"}, 2, `kes identity \[command\]`},
		{"unknown command", nil, []string{"frobnicate"}, 1, `^Error: "frobnicate" is not a kes command. See 'kes --help'\n$`},
		{"unknown sub-command", nil, []string{"key", "frobnicate"}, 1, `^Error: "frobnicate" is not a kes key command. See 'kes key --help'\n$`},
		{"unknown flag", nil, []string{"status", "--frob"}, 1, `^Error: unknown flag: --frob. See 'kes status --help'\n$`},
		{"bad flag value", nil, []string{"metric", "--rate", "soon"}, 1, `^Error: invalid argument "soon" for "--rate" flag: .*. See 'kes metric --help'\n$`},
		{"missing name", nil, []string{"key", "info"}, 1, `^Error: no key name specified. See 'kes key info --help'\n$`},
		{"too many", nil, []string{"key", "info", "a", "b"}, 1, `^Error: too many arguments. See 'kes key info --help'\n$`},
		{"no api key", noKey, []string{"key", "create", "k"}, 1, `^Error: no API key specified. Consider setting MINIO_KES_API_KEY\n$`},
		{"api key and key file", map[string]string{"KES_API_KEY": "kes:v1:x", "KES_CLIENT_KEY": "k.key"}, []string{"status"}, 1, `^Error: API key and private key file cannot be used at the same time\n$`},
		{"api key and cert file", map[string]string{"MINIO_KMS_KES_API_KEY": "kes:v1:x", "MINIO_KES_CLIENT_CERT": "c.crt"}, []string{"status"}, 1, `^Error: API key and certificate file cannot be used at the same time\n$`},
		{"key file only", map[string]string{"MINIO_KES_KEY_FILE": "k.key"}, []string{"ls"}, 1, `^Error: no certificate file specified. Consider setting MINIO_KES_CERT_FILE\n$`},
		{"cert file only", map[string]string{"KES_CLIENT_CERT": "c.crt"}, []string{"ls"}, 1, `^Error: no private key file specified. Consider setting MINIO_KES_KEY_FILE\n$`},
		{"bad api key", map[string]string{"KES_API_KEY": "kes:v1:AAAA"}, []string{"ls"}, 1, `^Error: parsing API key: invalid API key: invalid length\n$`},
		{"log audit and error", nil, []string{"log", "--audit", "--error"}, 1, `^Error: cannot display audit and error logs at the same time\n$`},
		{"ls -i -p", nil, []string{"ls", "-i", "-p"}, 1, `^Error: '-p / --policy' and '-i / --identity' must not be used at the same time\n$`},
		{"update", nil, []string{"update", "latest", "-d", "--os", "linux"}, 1, `(?s)^kes update: OpenKES does not update itself.*go install github.com/openkes/kes/cmd/kes@latest`},
		{"log trace type", nil, []string{"log", "trace", "--type", "x"}, 1, `^Error: invalid log type 'x'. Use 'audit', 'error' or 'metric'\n$`},
		{"metric rate", map[string]string{"KES_API_KEY": "kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"}, []string{"metric", "--rate", "0s"}, 1, `^Error: invalid rate '0s': must be positive\n$`},
		{"unreachable", map[string]string{"KES_SERVER": "127.0.0.1:1", "KES_API_KEY": "kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"}, []string{"key", "create", "-k", "x"}, 1, `^Error: failed to create key "x": kes: connection error: `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := kesExec(t, tt.vars, "", tt.args...)
			if code != tt.code || !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("kes %v: exit %d, stderr %q; want exit %d, stderr matching %s", tt.args, code, stderr, tt.code, tt.stderr)
			}
		})
	}
}

// TestVersion: kes -v and --version.
func TestVersion(t *testing.T) {
	for _, flag := range []string{"-v", "--version"} {
		stdout, _, code := kesExec(t, nil, "", flag)
		re := regexp.MustCompile(`^Version    \S+ commit=\S+\nRuntime    go\S+ \w+/\w+ compiler=\w+\nLicense    MIT https://opensource.org/license/mit\nCopyright  .+\n$`)
		if code != 0 || !re.MatchString(stdout) {
			t.Errorf("kes %s: exit %d, %q", flag, code, stdout)
		}
	}
}

// TestClientCertificate: `kes identity new --key --cert` files work as the
// client's credentials (KES_CLIENT_KEY/KES_CLIENT_CERT), also encrypted
// with --encrypt; a wrong password gives "incorrect password".
func TestClientCertificate(t *testing.T) {
	addr, admin := startTestServer(t)
	dir := t.TempDir()
	adminVars := map[string]string{"KES_SERVER": addr, "KES_API_KEY": admin.Secret()}
	policy := filepath.Join(dir, "policy.json")
	os.WriteFile(policy, []byte(`{"allow":["/v1/key/create/cert-*","/v1/identity/self/describe"]}`), 0o600)
	if _, stderr, code := kesExec(t, adminVars, "", "policy", "create", "-k", "certs", policy); code != 0 {
		t.Fatal(stderr)
	}
	for i, encrypt := range []bool{false, true} {
		keyFile, certFile := filepath.Join(dir, "c.key"), filepath.Join(dir, "c.crt")
		args := []string{"identity", "new", "-f", "--key", keyFile, "--cert", certFile, "--ip", "127.0.0.1"}
		if encrypt {
			args = append(args, "--encrypt")
		}
		if _, stderr, code := kesExec(t, nil, "pw\npw\n", args...); code != 0 {
			t.Fatal(stderr)
		}
		for file, mode := range map[string]os.FileMode{keyFile: 0o600, certFile: 0o644} {
			if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v %v, want mode %v", file, fi.Mode(), err, mode)
			}
		}
		id, _, _ := kesExec(t, nil, "", "identity", "of", certFile)
		if _, stderr, code := kesExec(t, adminVars, "", "policy", "assign", "-k", "certs", id); code != 0 {
			t.Fatal(stderr)
		}
		vars := map[string]string{"KES_SERVER": addr, "KES_CLIENT_KEY": keyFile, "KES_CLIENT_CERT": certFile}
		if _, stderr, code := kesExec(t, vars, "pw\n", "key", "create", "-k", "cert-"+string(rune('a'+i))); code != 0 {
			t.Fatalf("encrypt=%v: %s", encrypt, stderr)
		}
		stdout, stderr, code := kesExec(t, vars, "pw\n", "identity", "info", "-k", "--json")
		if code != 0 || !strings.Contains(stdout, `"identity":"`+id+`"`) {
			t.Errorf("encrypt=%v: identity info: %s %s", encrypt, stdout, stderr)
		}
		if encrypt {
			_, stderr, code := kesExec(t, vars, "wrong\n", "ls", "-k")
			if code != 1 || stderr != "Enter password for private key: Error: incorrect password\n" {
				t.Errorf("wrong password: exit %d, %q", code, stderr)
			}
		}
	}
}

// TestLogStream: `kes log` prints audit events as they happen, as a table
// or as JSON, and error events.
func TestLogStream(t *testing.T) {
	addr, admin := startTestServer(t)
	vars := map[string]string{"KES_SERVER": addr, "KES_API_KEY": admin.Secret()}
	n := 0
	for _, tt := range []struct {
		args []string
		want *regexp.Regexp
	}{
		{[]string{"log", "-k"}, regexp.MustCompile(`^\d\d:\d\d:\d\d    200     ` + admin.Identity().String()[:20] + `    127\.0\.0\.1          /v1/key/create/log-\d+ {10,}    \S+$`)},
		{[]string{"log", "-k", "--audit", "--json"}, regexp.MustCompile(`^\{"time":"[^"]+","request":\{"ip":"127.0.0.1","path":"/v1/key/create/log-\d+","identity":"` + admin.Identity().String() + `"\},"response":\{"code":200,"time":\d+\}\}$`)},
		{[]string{"log", "trace", "-k", "--type", "audit", "--json"}, regexp.MustCompile(`^\{"time":"[^"]+","request":\{"ip":"127.0.0.1","path":"/v1/key/create/log-\d+"`)},
	} {
		lines := startKes(t, vars, tt.args...)
		if !slicesContainsHeader(tt.args) {
			if h := <-lines; h != auditHeader {
				t.Fatalf("header %q", h)
			}
		}
		line := awaitEvent(t, lines, func(int) {
			n++
			if _, stderr, code := kesExec(t, vars, "", "key", "create", "-k", "log-"+strconv.Itoa(n)); code != 0 {
				t.Fatal(stderr)
			}
		})
		if !tt.want.MatchString(line) {
			t.Errorf("kes %v: %q does not match %s", tt.args, line, tt.want)
		}
	}
	// A TLS handshake without a client certificate is logged as an error.
	handshake := func(int) {
		if conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
			conn.Close()
		}
	}
	for _, tt := range []struct {
		args []string
		want *regexp.Regexp
	}{
		{[]string{"log", "-k", "--error"}, regexp.MustCompile(`^time=\S+ level=\w+ msg="http: TLS handshake error from 127.0.0.1:\d+: .*"$`)},
		{[]string{"log", "-k", "--error", "--json"}, regexp.MustCompile(`^\{"message":"time=\S+ level=\w+ msg=\\"http: TLS handshake error from 127.0.0.1:\d+: .*\\""\}$`)},
		{[]string{"log", "trace", "-k", "--type", "error"}, regexp.MustCompile(`^time=\S+ level=\w+ msg="http: TLS handshake error`)},
	} {
		lines := startKes(t, vars, tt.args...)
		line := awaitEvent(t, lines, handshake)
		if !tt.want.MatchString(line) {
			t.Errorf("kes %v: %q does not match %s", tt.args, line, tt.want)
		}
	}
}

func slicesContainsHeader(args []string) bool {
	return strings.Contains(strings.Join(args, " "), "--json")
}

// awaitEvent calls trigger until the log stream in lines delivers an
// event: the subscription may not be in place at the first trigger.
func awaitEvent(t *testing.T, lines <-chan string, trigger func(i int)) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		trigger(i)
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("log ended")
			}
			return l
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no log event")
		}
	}
}

// startKes starts the binary and returns its stdout lines; it is killed
// when the test ends.
func startKes(t *testing.T, vars map[string]string, args ...string) <-chan string {
	t.Helper()
	return startBinary(t, kesBinary(t), vars, args...)
}

// startBinary is startKes for the kes binary bin.
func startBinary(t *testing.T, bin string, vars map[string]string, args ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kes %v stderr: %s", args, stderr.String())
		}
	})
	return lines
}
