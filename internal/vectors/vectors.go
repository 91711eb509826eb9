// Package vectors gives tests the upstream compatibility vectors, kept in
// the repository at testdata/vectors (produced by upstream KES; its README
// says how), so a clone alone runs every test. A missing folder fails the
// test: the vectors are the specification, never skipped.
package vectors

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the absolute path of the vectors folder.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("vectors: cannot locate the module")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "vectors")
	if fi, err := os.Stat(filepath.Join(dir, "README.md")); err != nil || fi.IsDir() {
		t.Fatalf("compatibility vectors not found at %s: %v", dir, err)
	}
	return dir
}

// Path returns the path of a file or folder below the vectors folder.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Dir(t)}, elem...)...)
}

// ReadFile returns the content of a file below the vectors folder.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ReadJSONL decodes every line of the named JSON-lines file. An empty file
// fails the test.
func ReadJSONL[T any](t testing.TB, name string) []T {
	t.Helper()
	f, err := os.Open(Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d: %v", name, len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return out
}
