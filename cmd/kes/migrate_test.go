package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/migrate"
)

// migrateConfig writes a complete KES config file with the given keystore
// section (indented below "keystore:") and returns its path.
func migrateConfig(t *testing.T, keystoreYAML string) string {
	t.Helper()
	yml := "admin:\n  identity: disabled\ntls:\n  key: ./server.key\n  cert: ./server.crt\nkeystore:\n" + keystoreYAML
	f := filepath.Join(t.TempDir(), "kes.yml")
	if err := os.WriteFile(f, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// fsConfig returns a config file for an fs keystore and its directory.
func fsConfig(t *testing.T) (file, dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "keys")
	return migrateConfig(t, fmt.Sprintf("  fs:\n    path: %s\n", dir)), dir
}

// writeKeys stores keys as files of an fs keystore directory.
func writeKeys(t *testing.T, dir string, keys map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range keys {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// readKeys returns the files of an fs keystore directory.
func readKeys(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]string, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		keys[e.Name()] = string(b)
	}
	return keys
}

// noTicks is a ticker that never fires.
func noTicks(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

// oneTick is a ticker that fires once, at once.
func oneTick(time.Duration) (<-chan time.Time, func()) {
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c, func() {}
}

func TestMigrate10000Keys(t *testing.T) {
	from, srcDir := fsConfig(t)
	to, dstDir := fsConfig(t)
	keys := make(map[string]string, 10000)
	for i := range 10000 {
		keys[fmt.Sprintf("key-%05d", i)] = fmt.Sprintf("value of key %d", i)
	}
	writeKeys(t, srcDir, keys)

	var out bytes.Buffer
	m := &migrator{out: &out, errOut: &out, workers: migrate.Workers, newTicker: oneTick}
	if err := m.run(t.Context(), &migrateOptions{from: from, to: to}); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	want := regexp.MustCompile(`^Starting key migration:\nMigrated [ \d]{5}\d keys \.\.\.\nMigrated  10000 keys successfully!\n$`)
	if !want.MatchString(out.String()) {
		t.Errorf("output:\n%s\nwant match of %s", out.String(), want)
	}
	if got := readKeys(t, dstDir); !mapsEqual(got, keys) {
		t.Fatalf("target holds %d keys, differing from the source's %d", len(got), len(keys))
	}

	// Done when: a second run with --merge copies nothing.
	out.Reset()
	m.newTicker = noTicks
	if err := m.run(t.Context(), &migrateOptions{from: from, to: to, merge: true}); err != nil {
		t.Fatalf("migrate --merge: %v", err)
	}
	if got, want := out.String(), "Starting key migration:\nMigration succeeded! No keys migrated.\n"; got != want {
		t.Errorf("second run printed %q, want %q", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMigrateCommand(t *testing.T) {
	src := map[string]string{"a-1": "A1", "a-2": "A2", "b-1": "B1"}
	tests := []struct {
		name    string
		dst     map[string]string // target keys before
		args    []string          // after --from and --to
		stdout  string
		stderr  string
		code    int
		wantDst map[string]string
	}{
		{
			name:    "copy all",
			stdout:  "Starting key migration:\nMigrated      3 keys successfully!\n",
			wantDst: src,
		},
		{
			name:    "pattern",
			args:    []string{"a-*"},
			stdout:  "Starting key migration:\nMigrated      2 keys successfully!\n",
			wantDst: map[string]string{"a-1": "A1", "a-2": "A2"},
		},
		{
			name:    "pattern class",
			args:    []string{"[ab]-1"},
			stdout:  "Starting key migration:\nMigrated      2 keys successfully!\n",
			wantDst: map[string]string{"a-1": "A1", "b-1": "B1"},
		},
		{
			name:    "pattern matches nothing",
			args:    []string{"c*"},
			stdout:  "Starting key migration:\nMigration succeeded! No keys migrated.\n",
			wantDst: map[string]string{},
		},
		{
			name:    "conflict",
			dst:     map[string]string{"a-2": "old"},
			args:    []string{"a-2"},
			stdout:  "Starting key migration:\n",
			stderr:  "Error: key \"a-2\" already exists at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys\n",
			code:    1,
			wantDst: map[string]string{"a-2": "old"},
		},
		{
			name:    "merge",
			dst:     map[string]string{"a-2": "old"},
			args:    []string{"--merge"},
			stdout:  "Starting key migration:\nMigrated      2 keys successfully!\n",
			wantDst: map[string]string{"a-1": "A1", "a-2": "old", "b-1": "B1"},
		},
		{
			name:    "force",
			dst:     map[string]string{"a-2": "old", "c": "C"},
			args:    []string{"-f"},
			stdout:  "Starting key migration:\nMigrated      3 keys successfully!\n",
			wantDst: map[string]string{"a-1": "A1", "a-2": "A2", "b-1": "B1", "c": "C"},
		},
		{
			name:    "dry run",
			dst:     map[string]string{"a-2": "old"},
			args:    []string{"--dry-run", "--merge"},
			stdout:  "copy      a-1\nskip      a-2\ncopy      b-1\nDry run: 2 keys would be copied, 0 overwritten, 1 skipped. Nothing was changed.\n",
			wantDst: map[string]string{"a-2": "old"},
		},
		{
			name:    "dry run force",
			dst:     map[string]string{"a-2": "old"},
			args:    []string{"--force", "--dry-run", "a-*"},
			stdout:  "copy      a-1\noverwrite a-2\nDry run: 1 keys would be copied, 1 overwritten, 0 skipped. Nothing was changed.\n",
			wantDst: map[string]string{"a-2": "old"},
		},
		{
			name:    "dry run conflict",
			dst:     map[string]string{"a-2": "old"},
			args:    []string{"--dry-run"},
			stdout:  "copy      a-1\nconflict  a-2\ncopy      b-1\nDry run: 2 keys would be copied, 0 overwritten, 0 skipped. Nothing was changed.\n",
			stderr:  "Error: 1 keys already exist at the target. Use '--merge' to skip or '-f / --force' to overwrite existing keys: key already exists\n",
			code:    1,
			wantDst: map[string]string{"a-2": "old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, srcDir := fsConfig(t)
			to, dstDir := fsConfig(t)
			writeKeys(t, srcDir, src)
			writeKeys(t, dstDir, tt.dst)
			args := append([]string{"migrate", "--from", from, "--to", to}, tt.args...)
			stdout, stderr, code := cliRun(t, nil, false, args...)
			if stdout != tt.stdout || stderr != tt.stderr || code != tt.code {
				t.Errorf("got exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q",
					code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
			if got := readKeys(t, dstDir); !mapsEqual(got, tt.wantDst) {
				t.Errorf("target holds %v, want %v", got, tt.wantDst)
			}
			if got := readKeys(t, srcDir); !mapsEqual(got, src) {
				t.Errorf("source changed: %v", got)
			}
		})
	}
}

func TestMigrateTerminal(t *testing.T) {
	from, srcDir := fsConfig(t)
	to, dstDir := fsConfig(t)
	keys := map[string]string{"k1": "v1", "k2": "v2", "k3": "v3", "k4": "v4"}
	writeKeys(t, srcDir, keys)
	stdout, stderr, code := cliRun(t, nil, true, "migrate", "--from", from, "--to", to)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"\r\033[KMigrating keys: ",
		" 4 keys migrated\n",
		"\r\033[KVerifying keys: [==============================] 4/4\n",
		"Migrated      4 keys successfully!\nCopied 4, overwrote 0, skipped 0 existing keys; verified 4 keys.\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("terminal output %q lacks %q", stdout, want)
		}
	}
	if strings.Contains(stdout, "Starting key migration:") {
		t.Errorf("terminal output %q has the plain progress lines", stdout)
	}
	if got := readKeys(t, dstDir); !mapsEqual(got, keys) {
		t.Errorf("target holds %v", got)
	}
}

func TestMigrateFlagErrors(t *testing.T) {
	from, _ := fsConfig(t)
	to, _ := fsConfig(t)
	minkms := map[string]string{"MINIO_KMS_SERVER": "127.0.0.1:7373", "MINIO_KMS_ENCLAVE": "e", "MINIO_KMS_API_KEY": "k"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no from", nil, []string{"--to", to}, "no source specified. Use '--from' flag"},
		{"force and merge", nil, []string{"--from", from, "--to", to, "-f", "--merge"},
			"'-f / --force' and '--merge' must not be used at the same time"},
		{"two patterns", nil, []string{"--from", from, "--to", to, "a", "b"},
			"too many arguments. See 'kes migrate --help'"},
		{"unknown flag", nil, []string{"--from", from, "--target", to},
			"unknown flag: --target. See 'kes migrate --help'"},
		{"to and server", nil, []string{"--from", from, "--to", to, "-s", "127.0.0.1:7373"},
			"'-s / --server' and '--to' must not be used at the same time"},
		{"to and enclave", nil, []string{"--from", from, "--to", to, "--enclave", "e"},
			"'-e / --enclave' and '--to' must not be used at the same time"},
		{"to and api key", nil, []string{"--from", from, "--to", to, "-a", "k"},
			"'-a / --api-key' and '--to' must not be used at the same time"},
		{"to and insecure", nil, []string{"--from", from, "--to", to, "-k"},
			"'-k / --insecure' and '--to' must not be used at the same time"},
		{"to with minkms env", minkms, []string{"--from", from, "--to", to, "--dry-run"},
			""},
		{"no target", nil, []string{"--from", from}, "no target specified. Use '--to' flag"},
		{"no enclave", nil, []string{"--from", from, "-s", "127.0.0.1:7373", "-a", "k"},
			"no MinIO KMS enclave specified. Use '--enclave' flag or set MINIO_KMS_ENCLAVE"},
		{"no server", map[string]string{"MINIO_KMS_API_KEY": "k"}, []string{"--from", from, "-e", "e"},
			"no MinIO KMS server specified. Use '--server' flag or set MINIO_KMS_SERVER"},
		{"no api key", nil, []string{"--from", from, "-s", "127.0.0.1:7373", "-e", "e"},
			"no MinIO KMS API key specified. Use '--api-key' flag or set MINIO_KMS_API_KEY"},
		{"minkms from env", minkms, []string{"--from", from}, errMinKMS.Error()},
		{"minkms from flags", nil, []string{"--from", from, "-k", "-s", "h:7373", "-e", "e", "-a", "k"}, errMinKMS.Error()},
		{"bad pattern", nil, []string{"--from", from, "--to", to, "[a"}, `invalid pattern "[a": syntax error in pattern`},
		{"same file", nil, []string{"--from", from, "--to", from}, "source and target are the same config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cliRun(t, tt.env, false, append([]string{"migrate"}, tt.args...)...)
			if tt.want == "" {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				return
			}
			if code != 1 || stderr != "Error: "+tt.want+"\n" || stdout != "" {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit 1, stderr %q", code, stdout, stderr, "Error: "+tt.want+"\n")
			}
		})
	}
}

func TestMigrateInvalidConfig(t *testing.T) {
	good, _ := fsConfig(t)
	noTLS := filepath.Join(t.TempDir(), "kes.yml")
	if err := os.WriteFile(noTLS, []byte("admin:\n  identity: disabled\nkeystore:\n  fs:\n    path: /tmp/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &migrator{out: new(bytes.Buffer), errOut: new(bytes.Buffer)}
	for _, o := range []*migrateOptions{{from: noTLS, to: good}, {from: good, to: noTLS}} {
		if err := m.run(t.Context(), o); !errors.Is(err, config.ErrNoPrivateKey) {
			t.Errorf("run(%+v) = %v, want %v", o, err, config.ErrNoPrivateKey)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.yml")
	if err := m.run(t.Context(), &migrateOptions{from: missing, to: good}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing source: %v, want %v", err, os.ErrNotExist)
	}
}
