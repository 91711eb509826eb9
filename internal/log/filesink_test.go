package log_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/log"
)

// readAuditFiles returns the paths of the events in the backups of path,
// oldest first, and then in path, checking that every line is a complete
// JSON event and that every file is at most maxSize bytes and mode 0600.
func readAuditFiles(t *testing.T, path string, maxSize int64) (paths []string, files int) {
	t.Helper()
	backups := listBackups(t, path)
	for _, name := range append(backups, path) {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
		if maxSize > 0 && fi.Size() > maxSize {
			t.Errorf("%s: %d bytes, more than %d", name, fi.Size(), maxSize)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev streamEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: line %q: %v", name, sc.Text(), err)
			}
			if ev.Request.Identity != testIdentity.String() || ev.Response.Code != 200 || ev.Time.IsZero() {
				t.Fatalf("%s: unexpected event %q", name, sc.Text())
			}
			paths = append(paths, ev.Request.Path)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return paths, len(backups) + 1
}

// TestFileSinkRotatesBySizeUnderLoad logs from concurrent writers into a
// file sink that rotates every 32 KiB and checks that every event is in
// the files, once, whole, in each writer's order, and that no file grew
// past the limit.
func TestFileSinkRotatesBySizeUnderLoad(t *testing.T) {
	const (
		writers   = 8
		perWriter = 1500
		maxSize   = 32 << 10
	)
	dir := filepath.Join(t.TempDir(), "audit") // created by the sink
	path := filepath.Join(dir, "audit.log")
	a := fileAudit(t, log.FileConfig{Path: path, MaxSize: maxSize})
	logConcurrently(t, a, writers, perWriter, 0, 2*time.Minute)
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := a.SinkDropped(); n != 0 {
		t.Fatalf("%d events dropped", n)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	paths, files := readAuditFiles(t, path, maxSize)
	// About 200 bytes an event: some 2.6 MB in 32 KiB files.
	if files < 50 {
		t.Errorf("%d files, want a rotation every 32 KiB", files)
	}
	log.CheckSequences(t, paths, sinkPath, writers, perWriter)
}

// TestFileSinkRotatesByTime checks rotation by age, and that MaxBackups
// and MaxAge delete old backups, with a fake clock.
func TestFileSinkRotatesByTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		a := fileAudit(t, log.FileConfig{Path: path, RotateEvery: time.Minute, MaxBackups: 2})
		// Virtual time: each event is written at the next tick of the
		// writer (100 ms), and its file rotated a minute later.
		for seq := range 4 {
			a.Log(sinkEvent(0, seq))
			time.Sleep(2 * time.Minute)
			synctest.Wait()
		}
		time.Sleep(2 * time.Minute) // an empty file is not rotated
		synctest.Wait()
		a.Log(sinkEvent(0, 4))
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		backups := listBackups(t, path)
		// Four rotations (0:01:00.1, 0:03:00.1, …); MaxBackups keeps the
		// last two.
		want := []string{
			strings.TrimSuffix(path, ".log") + "-2000-01-01T00-05-00.100.log",
			strings.TrimSuffix(path, ".log") + "-2000-01-01T00-07-00.100.log",
		}
		if strings.Join(backups, " ") != strings.Join(want, " ") {
			t.Fatalf("backups %q, want %q", backups, want)
		}
		paths, _ := readAuditFiles(t, path, 0)
		if got := strings.Join(paths, " "); got != "/v1/key/generate/w0-2 /v1/key/generate/w0-3 /v1/key/generate/w0-4" {
			t.Fatalf("events %s", got)
		}
	})
}

// TestFileSinkMaxAge checks that backups rotated longer ago than MaxAge
// are deleted at the next rotation.
func TestFileSinkMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		a := fileAudit(t, log.FileConfig{Path: path, RotateEvery: time.Minute, MaxAge: 3 * time.Minute})
		for seq := range 3 {
			a.Log(sinkEvent(0, seq))
			time.Sleep(2 * time.Minute)
			synctest.Wait()
		}
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		backups := listBackups(t, path)
		// Rotated at 0:01:00.1, 0:03:00.1 and 0:05:00.1; at the last,
		// the first is 4 minutes old.
		if len(backups) != 2 || !strings.HasSuffix(backups[0], "-2000-01-01T00-03-00.100.log") {
			t.Fatalf("backups %q, want those of 0:03 and 0:05", backups)
		}
	})
}

// TestSinkShutdownLosesNothing logs events and shuts down at once: every
// event queued is written before Shutdown returns.
func TestSinkShutdownLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a := fileAudit(t, log.FileConfig{Path: path})
	const n = 5000
	for seq := range n {
		a.Log(sinkEvent(0, seq))
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	paths, files := readAuditFiles(t, path, 0)
	if files != 1 {
		t.Errorf("%d files, want 1", files)
	}
	log.CheckSequences(t, paths, sinkPath, 1, n)

	// Events after Shutdown are counted, not written.
	a.Log(sinkEvent(0, n))
	if got := a.SinkDropped(); got != 1 {
		t.Errorf("SinkDropped after Shutdown = %d, want 1", got)
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestFileSinkAppends checks that a sink opened on an existing file appends
// to it and keeps its mode.
func TestFileSinkAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	a := fileAudit(t, log.FileConfig{Path: path})
	a.Log(sinkEvent(0, 0))
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "{}" || !strings.Contains(lines[1], `"path":"/v1/key/generate/w0-0"`) {
		t.Fatalf("file holds %q", data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode changed: %v %v", fi.Mode(), err)
	}
}

// TestNewFileSinkErrors checks that a file sink that cannot open its file
// fails at once.
func TestNewFileSinkErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkNewSinkErrors(t, log.NewFileSink, "log: audit file: ", map[string]log.FileConfig{
		"no path":         {},
		"parent is file":  {Path: filepath.Join(notDir, "audit.log")},
		"path is a dir":   {Path: dir},
		"missing var dir": {Path: filepath.Join(notDir, "x", "audit.log")},
	})
}

// BenchmarkAuditSinkFile measures logging to a file sink (the console off)
// from concurrent goroutines, and counts the write calls per event.
func BenchmarkAuditSinkFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	a := fileAudit(b, log.FileConfig{Path: path, MaxSize: -1})
	benchmarkLog(b, a)
	if err := a.Shutdown(b.Context()); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(b.N), "B/event")
}

// BenchmarkAuditOff is the baseline of BenchmarkAuditSinkFile: the same
// events with the audit log switched off.
func BenchmarkAuditOff(b *testing.B) {
	benchmarkLog(b, log.NewAuditLog(nil, slog.LevelError+1, nil))
}
