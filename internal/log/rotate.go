package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxSize is the size at which an audit file is rotated when
// [FileConfig].MaxSize is zero.
const DefaultMaxSize = 100 << 20

// FileConfig configures an audit file sink (config key log.audit_file):
// JSON lines, one per audit event, in a file that is rotated by size and
// by age.
//
// A file is rotated by renaming it to a backup in the same directory,
// named after it and the time of the rotation: audit.log becomes
// audit-2026-12-01T20-50-41.123.log (UTC; "-1", "-2" … is appended to the
// time when that name exists), and a new audit.log is created. Files are
// created with mode 0600, missing directories with 0700. Lines are never
// split across files.
type FileConfig struct {
	// Path is the file's path. Required.
	Path string

	// MaxSize is the size in bytes the file never grows past: a write
	// that would make it larger rotates it first (a single line longer
	// than MaxSize goes into a file of its own). Zero means
	// DefaultMaxSize; negative means no rotation by size.
	MaxSize int64

	// RotateEvery rotates the file when its first line is this old, so
	// that a file holds the events of at most this long. (For a file
	// that holds lines at start, the time counts from the start.) Zero
	// means no rotation by time.
	RotateEvery time.Duration

	// MaxBackups is the number of backups kept; older ones are deleted
	// after a rotation. Zero keeps all.
	MaxBackups int

	// MaxAge deletes backups rotated longer ago than this, after a
	// rotation. Zero keeps them.
	MaxAge time.Duration
}

// NewFileSink opens (creating it if needed) the audit file of c and starts
// the sink's writer goroutine. Failures of later writes are logged to
// errLog, which may be nil. The sink applies back-pressure: see [Sink].
func NewFileSink(c FileConfig, errLog *slog.Logger) (*Sink, error) {
	r, err := openRotator(c, time.Now)
	if err != nil {
		return nil, err
	}
	return newSink("file", true, r, errLog, time.Now), nil
}

// rotator is a file that rotates by size and age. Only the sink's writer
// goroutine uses it.
type rotator struct {
	c     FileConfig
	now   func() time.Time
	f     *os.File
	size  int64
	first time.Time // when the first line of the file was written; zero while it is empty
}

func openRotator(c FileConfig, now func() time.Time) (*rotator, error) {
	if c.Path == "" {
		return nil, errors.New("log: audit file: no path")
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	r := &rotator{c: c, now: now}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// open opens (or creates) the file for appending.
func (r *rotator) open() error {
	if err := os.MkdirAll(filepath.Dir(r.c.Path), 0o700); err != nil {
		return fmt.Errorf("log: audit file: %w", err)
	}
	f, err := os.OpenFile(r.c.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log: audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log: audit file: %w", err)
	}
	r.f, r.size, r.first = f, fi.Size(), time.Time{}
	if r.size > 0 {
		r.first = r.now()
	}
	return nil
}

// write appends batch, whole lines, rotating the file before a line that
// would make it larger than MaxSize. After a failure the file is opened
// again at the next write.
func (r *rotator) write(_ context.Context, batch []byte) (int, error) {
	written := 0
	for written < len(batch) {
		if r.f == nil {
			if err := r.open(); err != nil {
				return written, err
			}
		}
		chunk := r.fit(batch[written:])
		if len(chunk) == 0 { // the next line does not fit: rotate
			if err := r.rotate(); err != nil {
				return written, err
			}
			continue
		}
		if r.size == 0 {
			r.first = r.now()
		}
		n, err := r.f.Write(chunk)
		r.size += int64(n)
		written += n
		if err != nil {
			r.f.Close()
			r.f = nil
			return written, fmt.Errorf("log: audit file: %w", err)
		}
	}
	return written, nil
}

// fit returns the longest prefix of whole lines of b that fits into the
// file, or the first line if the file is empty. It returns nothing when
// the file must be rotated first.
func (r *rotator) fit(b []byte) []byte {
	if r.c.MaxSize < 0 || r.size+int64(len(b)) <= r.c.MaxSize {
		return b
	}
	room := r.c.MaxSize - r.size
	if room > 0 {
		if i := bytes.LastIndexByte(b[:min(int64(len(b)), room)], '\n'); i >= 0 {
			return b[:i+1]
		}
	}
	if r.size > 0 {
		return nil
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return b
}

// tick rotates the file if it is due by time.
func (r *rotator) tick(now time.Time) error {
	if r.c.RotateEvery <= 0 || r.f == nil || r.first.IsZero() || now.Sub(r.first) < r.c.RotateEvery {
		return nil
	}
	return r.rotate()
}

func (r *rotator) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// rotate renames the file to a new backup, opens a new file and deletes
// the backups beyond MaxBackups and MaxAge.
func (r *rotator) rotate() error {
	if err := r.close(); err != nil {
		return fmt.Errorf("log: audit file: %w", err)
	}
	now := r.now()
	backup, err := r.backupName(now)
	if err != nil {
		return err
	}
	if err := os.Rename(r.c.Path, backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log: audit file: rotate: %w", err)
	}
	if err := r.open(); err != nil {
		return err
	}
	return r.prune(now)
}

// backupTime is the layout of the time in a backup's name: sortable and
// free of colons.
const backupTime = "2006-01-02T15-04-05.000"

// backupName returns a backup name for a rotation at t that does not
// exist yet.
func (r *rotator) backupName(t time.Time) (string, error) {
	dir, prefix, ext := splitPath(r.c.Path)
	stamp := t.UTC().Format(backupTime)
	for n := 0; n < 1000; n++ {
		name := prefix + "-" + stamp + ext
		if n > 0 {
			name = prefix + "-" + stamp + "-" + strconv.Itoa(n) + ext
		}
		name = filepath.Join(dir, name)
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
	}
	return "", fmt.Errorf("log: audit file: no free backup name for %s", stamp)
}

// splitPath splits "dir/audit.log" into "dir", "audit" and ".log".
func splitPath(path string) (dir, prefix, ext string) {
	dir, base := filepath.Split(path)
	ext = filepath.Ext(base)
	return filepath.Clean(dir), strings.TrimSuffix(base, ext), ext
}

// backup is a rotated file.
type backup struct {
	name string // full path
	t    time.Time
	seq  int
}

// Backups returns the backups of the audit file path, oldest first. Files
// of other names are left out.
func Backups(path string) ([]string, error) {
	bs, err := listBackups(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.name
	}
	return names, nil
}

func listBackups(path string) ([]backup, error) {
	dir, prefix, ext := splitPath(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("log: audit file: %w", err)
	}
	var bs []backup
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if rest, ok = strings.CutSuffix(rest, ext); !ok || len(rest) < len(backupTime) {
			continue
		}
		t, err := time.Parse(backupTime, rest[:len(backupTime)])
		if err != nil {
			continue
		}
		seq := 0
		if tail := rest[len(backupTime):]; tail != "" {
			n, ok := strings.CutPrefix(tail, "-")
			if seq, err = strconv.Atoi(n); !ok || err != nil || seq <= 0 {
				continue
			}
		}
		bs = append(bs, backup{name: filepath.Join(dir, e.Name()), t: t, seq: seq})
	}
	slices.SortFunc(bs, func(a, b backup) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	return bs, nil
}

// prune deletes the backups beyond MaxBackups and those older than MaxAge.
func (r *rotator) prune(now time.Time) error {
	if r.c.MaxBackups <= 0 && r.c.MaxAge <= 0 {
		return nil
	}
	bs, err := listBackups(r.c.Path)
	if err != nil {
		return err
	}
	var errs []error
	for i, b := range bs {
		old := r.c.MaxAge > 0 && now.Sub(b.t) > r.c.MaxAge
		many := r.c.MaxBackups > 0 && len(bs)-i > r.c.MaxBackups
		if old || many {
			if err := os.Remove(b.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("log: audit file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
