//go:build linux

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

// mountTmpfs mounts a tmpfs of size bytes (a mount option such as "256k")
// on a new directory and unmounts it when the test ends. Mounting needs
// root (CAP_SYS_ADMIN); without it the test fails and says so.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount -t tmpfs -o size=%s %s: %v\n"+
			"hint: the disk-full and read-only tests mount a small tmpfs as the key directory; "+
			"run the tests as root or with CAP_SYS_ADMIN (CI runs as root)", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
	return dir
}

// remount makes the tmpfs at dir read-only or writable again.
func remount(t *testing.T, dir string, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT | syscall.MS_NOSUID | syscall.MS_NODEV)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, ""); err != nil {
		t.Fatalf("remount %s (read-only %v): %v", dir, readOnly, err)
	}
}

// fillDisk writes a file named name into dir until the file system is
// full, and returns its path.
func fillDisk(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for i := 0; ; i++ {
		if _, err = f.Write(chunk); err != nil {
			break
		}
		if i > 1<<20 {
			t.Fatal("the tmpfs does not fill up")
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
	}
	return p
}

// wantStoreFailure checks that a write request failed with a 5xx JSON
// error whose message names no path, and that the error log has the cause.
func wantStoreFailure(t *testing.T, s *fsServer, method, path string, body any, cause string) {
	t.Helper()
	code, reply := s.mustDo(t, method, path, body)
	var e struct{ Message string }
	if err := json.Unmarshal(reply, &e); err != nil || code < 500 || e.Message == "" {
		t.Errorf("%s %s = %d %s, want a 5xx JSON error", method, path, code, reply)
	}
	if strings.Contains(e.Message, s.keys) || strings.Contains(e.Message, ".tmp-") {
		t.Errorf("%s %s: the client's error names a path: %q", method, path, e.Message)
	}
	t.Logf("%s %s → %d %s", method, path, code, bytes.TrimSpace(reply))
	// The log line may reach the pipe after the reply.
	logged, err := waitLogLine(t, s, "req.path="+path+" ", cause)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
	}
	if strings.Contains(logged, s.keys) {
		t.Errorf("%s %s: the error log names the absolute path: %s", method, path, logged)
	}
	t.Logf("error log: %s", logged)
}

// waitLogLine waits up to 10 s for a line of the server's stderr that
// holds every one of parts, and returns it.
func waitLogLine(t *testing.T, s *fsServer, parts ...string) (string, error) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		for line := range strings.Lines(s.stderr.String()) {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
				return strings.TrimSpace(line), nil
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			return "", fmt.Errorf("no error log line with %q:\n%s", parts, s.stderr)
		}
	}
}

// wantKeys checks that the server lists exactly names and the directory
// holds nothing else but extra (no temporary or partial file).
func wantKeys(t *testing.T, s *fsServer, names []string, extra ...string) {
	t.Helper()
	listed, err := s.list(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, names) {
		t.Errorf("listed %q, want %q", listed, names)
	}
	entries, err := os.ReadDir(s.keys)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if want := slices.Sorted(slices.Values(append(slices.Clone(names), extra...))); !slices.Equal(files, want) {
		t.Errorf("the key directory holds %q, want %q", files, want)
	}
}

// wantReads checks that every key in names serves a generate+decrypt
// round trip and a describe.
func wantReads(t *testing.T, s *fsServer, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := s.roundTrip(t.Context(), name); err != nil {
			t.Error(err)
		}
		if code, reply := s.mustDo(t, http.MethodGet, "/v1/key/describe/"+name, nil); code != http.StatusOK {
			t.Errorf("describe %s: %d %s", name, code, reply)
		}
	}
}

// wantNoSecret checks that the server's error log holds none of the key
// bytes, in any encoding a log could use.
func wantNoSecret(t *testing.T, s *fsServer, secret []byte) {
	t.Helper()
	log := s.stderr.String()
	for _, enc := range []string{base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret), hex.EncodeToString(secret), string(secret)} {
		if strings.Contains(log, enc) {
			t.Errorf("the error log holds imported key bytes")
		}
	}
}

// TestDiskFull: with the fs store's file system full (a 256 KiB tmpfs),
// creates and imports answer a 5xx JSON error, leave no file behind and
// list nothing new; existing keys keep serving, also those not cached;
// once space is freed, creates work again (issue 11).
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "256k")
	s := newFSServer(t, dir)
	for _, name := range []string{"cached", "uncached"} {
		if code, reply := s.mustDo(t, http.MethodPost, "/v1/key/create/"+name, nil); code != http.StatusOK {
			t.Fatalf("create %s: %d %s", name, code, reply)
		}
	}
	wantReads(t, s, "cached")

	filler := fillDisk(t, dir, ".filler")
	wantStoreFailure(t, s, http.MethodPost, "/v1/key/create/full", nil, "no space left on device")
	secret := randomKey()
	wantStoreFailure(t, s, http.MethodPost, "/v1/key/import/full-import", kes.ImportKeyRequest{Key: secret, Cipher: "AES256"}, "no space left on device")
	wantNoSecret(t, s, secret)
	wantKeys(t, s, []string{"cached", "uncached"}, ".filler")
	wantReads(t, s, "cached", "uncached")
	// A soft delete (the default) renames the key to its tombstone on the
	// fs store: it writes no data, so on a full disk it succeeds, as
	// upstream's immediate delete did, and the key stays restorable. (When
	// soft deletion copied the record, it failed here with ENOSPC.) The
	// purge route removes the tombstone at once and frees its space.
	if code, reply := s.mustDo(t, http.MethodDelete, "/v1/key/delete/cached", nil); code != http.StatusOK {
		t.Fatalf("soft delete on a full disk: %d %s", code, reply)
	}
	if code, reply := s.mustDo(t, http.MethodGet, "/v1/key/describe/cached", nil); code != http.StatusNotFound {
		t.Errorf("describe of a deleted key: %d %s, want 404", code, reply)
	}
	if code, reply := s.mustDo(t, http.MethodGet, "/v1/key/deleted/describe/cached", nil); code != http.StatusOK {
		t.Errorf("describe of the deleted key's tombstone: %d %s", code, reply)
	}
	if code, reply := s.mustDo(t, http.MethodDelete, "/v1/key/purge/cached", nil); code != http.StatusOK {
		t.Errorf("purge on a full disk: %d %s", code, reply)
	}
	if code, reply := s.mustDo(t, http.MethodGet, "/v1/key/deleted/describe/cached", nil); code != http.StatusNotFound {
		t.Errorf("describe of a purged key's tombstone: %d %s, want 404", code, reply)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, reply := s.mustDo(t, http.MethodPost, "/v1/key/create/full", nil); code != http.StatusOK {
		t.Fatalf("create after freeing space: %d %s", code, reply)
	}
	wantReads(t, s, "full", "uncached")
	wantKeys(t, s, []string{"full", "uncached"})
}

// TestReadOnlyDir: with the fs store's file system remounted read-only,
// creates, imports and deletes answer a 5xx JSON error and change nothing;
// reads keep working, also of keys not cached; once writable again, writes
// work (issue 11). A read-only mount, because root ignores mode bits.
func TestReadOnlyDir(t *testing.T) {
	dir := mountTmpfs(t, "1m")
	s := newFSServer(t, dir)
	for _, name := range []string{"cached", "uncached"} {
		if code, reply := s.mustDo(t, http.MethodPost, "/v1/key/create/"+name, nil); code != http.StatusOK {
			t.Fatalf("create %s: %d %s", name, code, reply)
		}
	}
	wantReads(t, s, "cached")

	remount(t, dir, true)
	wantStoreFailure(t, s, http.MethodPost, "/v1/key/create/ro", nil, "read-only file system")
	secret := randomKey()
	wantStoreFailure(t, s, http.MethodPost, "/v1/key/import/ro-import", kes.ImportKeyRequest{Key: secret, Cipher: "AES256"}, "read-only file system")
	wantNoSecret(t, s, secret)
	wantStoreFailure(t, s, http.MethodDelete, "/v1/key/delete/cached", nil, "read-only file system")
	wantKeys(t, s, []string{"cached", "uncached"})
	wantReads(t, s, "cached", "uncached")

	remount(t, dir, false)
	if code, reply := s.mustDo(t, http.MethodPost, "/v1/key/create/ro", nil); code != http.StatusOK {
		t.Fatalf("create after remounting writable: %d %s", code, reply)
	}
	if code, reply := s.mustDo(t, http.MethodDelete, "/v1/key/delete/cached", nil); code != http.StatusOK {
		t.Fatalf("delete after remounting writable: %d %s", code, reply)
	}
	wantReads(t, s, "ro", "uncached")
	// The delete was soft (the default): the key's copy is kept.
	wantKeys(t, s, []string{"ro", "uncached"}, tombstoneOf(t, s, "cached"))
}

// tombstoneOf returns the name of the one tombstone of key in the key
// directory of s.
func tombstoneOf(t *testing.T, s *fsServer, key string) string {
	t.Helper()
	entries, err := os.ReadDir(s.keys)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		if ts, ok := tombstone.Parse(e.Name()); ok && ts.Key == key {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		t.Fatalf("tombstones of %s: %q, want one", key, found)
	}
	return found[0]
}
