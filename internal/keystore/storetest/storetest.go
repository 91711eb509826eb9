// Package storetest is the conformance suite that every [keystore.Store]
// implementation runs: the in-memory and directory stores always, Vault and
// the cloud stores against real services in CI, and the key cache when it
// wraps a store.
//
// A backend's test calls [Run] with a constructor that returns an empty
// store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) keystore.Store {
//			s, err := fs.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite uses only names of [A-Za-z0-9-] (valid everywhere, also at Azure)
// and checks which error comes back with errors.Is, never by text.
//
// This package is imported by tests only.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/keystore"
)

// Options adapt the suite to documented differences between stores. The
// zero value is the strict contract of [keystore.Store].
type Options struct {
	// DeleteMissingOK is set for stores that, as upstream, treat deleting a
	// missing key as success (Vault, Azure, KeySecure). If false, Delete of a
	// missing key must return an error matching keystore.ErrNotFound.
	DeleteMissingOK bool

	// MaxValueSize is the largest value the suite stores. If zero, 1 MiB
	// (the read limit of the directory store) is used. Stores with a
	// smaller vendor limit (64 KiB at AWS and GCP) set theirs.
	MaxValueSize int

	// Concurrency is the number of goroutines that race to create the same
	// name. If zero, 16 are used.
	Concurrency int

	// ReplaceUnsupported is set for a store that has the Replace method of
	// [keystore.Replacer] but cannot compare and swap in its current
	// configuration (Vault K/V v1): Replace must then return an error
	// matching errors.ErrUnsupported and change nothing.
	ReplaceUnsupported bool
}

// Run runs the conformance suite with the zero [Options]. newStore is called
// once per subtest and must return an empty store; the suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) keystore.Store) {
	t.Helper()
	RunOptions(t, newStore, Options{})
}

// RunOptions runs the conformance suite with the given options. newStore is
// called once per subtest and must return an empty store; the suite closes
// it.
func RunOptions(t *testing.T, newStore func(t *testing.T) keystore.Store, opts Options) {
	t.Helper()
	if opts.MaxValueSize <= 0 {
		opts.MaxValueSize = 1 << 20
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s keystore.Store, opts Options)
	}{
		{"CreateGetDelete", testCreateGetDelete},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"DeleteMissing", testDeleteMissing},
		{"Values", testValues},
		{"CreateKeepsNoReference", testCreateKeepsNoReference},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"ListAfterDelete", testListAfterDelete},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentDistinct", testConcurrentDistinct},
		{"Status", testStatus},
	}
	replacer, renamer := false, false
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, newStore)
			_, replacer = s.(keystore.Replacer)
			_, renamer = s.(keystore.Renamer)
			tt.fn(t, s, opts)
		})
	}
	if renamer {
		runRename(t, newStore, opts)
	}
	if !replacer {
		return // the optional capability is not offered
	}
	type replaceTest struct {
		name string
		fn   func(t *testing.T, s keystore.Replacer, opts Options)
	}
	replaceTests := []replaceTest{{"Replace", testReplace}, {"ConcurrentReplace", testConcurrentReplace}}
	if opts.ReplaceUnsupported {
		replaceTests = []replaceTest{{"ReplaceUnsupported", testReplaceUnsupported}}
	}
	for _, tt := range replaceTests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, newStore)
			r, ok := s.(keystore.Replacer)
			if !ok {
				t.Fatal("the store offered keystore.Replacer in the other tests but not here")
			}
			tt.fn(t, r, opts)
		})
	}
}

// replacerStore is a store with the Replace capability.
type replacerStore interface {
	keystore.Store
	keystore.Replacer
}

func testReplace(t *testing.T, r keystore.Replacer, _ Options) {
	s := r.(replacerStore)
	ctx := t.Context()
	mustCreate(t, s, "k", []byte("v1"))
	if err := r.Replace(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
		t.Fatalf("Replace(k, v1, v2): %v", err)
	}
	mustGet(t, s, "k", []byte("v2"))
	err := r.Replace(ctx, "k", []byte("v1"), []byte("v3"))
	if !errors.Is(err, keystore.ErrChanged) {
		t.Fatalf("Replace from a stale value: got %v, want keystore.ErrChanged", err)
	}
	mustGet(t, s, "k", []byte("v2"))
	if err := r.Replace(ctx, "missing", []byte("v1"), []byte("v2")); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Replace of a missing key: got %v, want keystore.ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Replace of a missing key created it: Get = %v", err)
	}
	// Replace keeps no reference to new.
	next := []byte("v4")
	if err := r.Replace(ctx, "k", []byte("v2"), next); err != nil {
		t.Fatalf("Replace(k, v2, v4): %v", err)
	}
	next[0] = 'x'
	mustGet(t, s, "k", []byte("v4"))
	names, _, err := s.List(ctx, "", "", 0)
	if err != nil || !slices.Equal(names, []string{"k"}) {
		t.Fatalf("List after Replace = %q, %v; want [k]", names, err)
	}
}

func testReplaceUnsupported(t *testing.T, r keystore.Replacer, _ Options) {
	s := r.(replacerStore)
	mustCreate(t, s, "k", []byte("v1"))
	if err := r.Replace(t.Context(), "k", []byte("v1"), []byte("v2")); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Replace: got %v, want errors.ErrUnsupported", err)
	}
	mustGet(t, s, "k", []byte("v1"))
}

func testConcurrentReplace(t *testing.T, r keystore.Replacer, opts Options) {
	s := r.(replacerStore)
	mustCreate(t, s, "contended", []byte("v0"))
	n := opts.Concurrency
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = r.Replace(t.Context(), "contended", []byte("v0"), fmt.Appendf(nil, "value-%d", i))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("Replace by goroutines %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, keystore.ErrChanged):
			t.Errorf("goroutine %d: got error %v, want keystore.ErrChanged", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent Replace succeeded")
	}
	mustGet(t, s, "contended", fmt.Appendf(nil, "value-%d", winner))
}

func testCreateGetDelete(t *testing.T, s keystore.Store, _ Options) {
	ctx := t.Context()
	value := []byte("c2VjcmV0IGtleSByZWNvcmQ=")
	mustCreate(t, s, "my-key", value)
	mustGet(t, s, "my-key", value)
	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatalf("Delete(my-key): %v", err)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after Delete: got error %v, want keystore.ErrNotFound", err)
	}
	// The name is free again.
	mustCreate(t, s, "my-key", []byte("second"))
	mustGet(t, s, "my-key", []byte("second"))
}

func testCreateExisting(t *testing.T, s keystore.Store, _ Options) {
	mustCreate(t, s, "my-key", []byte("first"))
	err := s.Create(t.Context(), "my-key", []byte("second"))
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create of existing name: got error %v, want keystore.ErrExists", err)
	}
	if errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Create of existing name: error %v also matches keystore.ErrNotFound", err)
	}
	mustGet(t, s, "my-key", []byte("first"))
}

func testGetMissing(t *testing.T, s keystore.Store, _ Options) {
	mustCreate(t, s, "other", []byte("x"))
	for _, name := range []string{"missing", "othe", "other-1", "OTHER"} {
		v, err := s.Get(t.Context(), name)
		if !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q): got %q, %v; want keystore.ErrNotFound", name, v, err)
		}
		if keystore.IsUnreachable(err) {
			t.Errorf("Get(%q): not found reported as unreachable: %v", name, err)
		}
	}
}

func testDeleteMissing(t *testing.T, s keystore.Store, opts Options) {
	ctx := t.Context()
	err := s.Delete(ctx, "missing")
	switch {
	case opts.DeleteMissingOK && err != nil:
		t.Fatalf("Delete(missing): got error %v, want success", err)
	case !opts.DeleteMissingOK && !errors.Is(err, keystore.ErrNotFound):
		t.Fatalf("Delete(missing): got error %v, want keystore.ErrNotFound", err)
	}
	// Deleting twice behaves the same way.
	mustCreate(t, s, "once", []byte("x"))
	if err := s.Delete(ctx, "once"); err != nil {
		t.Fatalf("Delete(once): %v", err)
	}
	err = s.Delete(ctx, "once")
	if opts.DeleteMissingOK != (err == nil) || (err != nil && !errors.Is(err, keystore.ErrNotFound)) {
		t.Fatalf("second Delete(once): got error %v (DeleteMissingOK=%v)", err, opts.DeleteMissingOK)
	}
}

// Values returns the values the suite stores: text, every byte value,
// bytes that are not UTF-8, and a large value of the given size.
func Values(maxSize int) map[string][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := make([]byte, maxSize)
	for i := range large {
		large[i] = byte(i*7 + i>>8) // not periodic in 256, so shifted copies differ
	}
	return map[string][]byte{
		"text":       []byte(`{"bytes":"tqtp4E4lzrtHC3+ODuvN8X5Ao7Wl5Dk0ufh3rlLWf4M="}`),
		"base64":     []byte("CiIKIA6KCX4MTfp1bL3Pc9sbfsI0/nKl+ufyd/vtT38j/P0JEiIKIK8="),
		"one-byte":   {0},
		"all-bytes":  all,
		"not-utf8":   {0xff, 0xfe, 0x00, 0x80, '\n', '\r', 0xc3},
		"newlines":   []byte("line1\nline2\r\n\n"),
		"large":      large,
		"large-less": large[:maxSize-1],
	}
}

func testValues(t *testing.T, s keystore.Store, opts Options) {
	values := Values(opts.MaxValueSize)
	for name, v := range values {
		mustCreate(t, s, name, v)
	}
	for name, v := range values {
		mustGet(t, s, name, v)
	}
}

func testCreateKeepsNoReference(t *testing.T, s keystore.Store, _ Options) {
	v := []byte("original")
	mustCreate(t, s, "k", v)
	copy(v, "CHANGED!")
	mustGet(t, s, "k", []byte("original"))
}

func testList(t *testing.T, s keystore.Store, _ Options) {
	ctx := t.Context()
	if names, next, err := s.List(ctx, "", "", 0); err != nil || len(names) != 0 || next != "" {
		t.Fatalf("List of empty store: got %q, %q, %v; want none", names, next, err)
	}
	all := []string{"a", "a-1", "a-2", "ab", "abc", "b", "B", "b-key", "c", "my-key-0", "my-key-1", "my-key-10", "my-key-2", "z"}
	for _, name := range all {
		mustCreate(t, s, name, []byte(name))
	}
	sorted := slices.Clone(all)
	slices.Sort(sorted)

	tests := []struct {
		prefix, continueAt string
		n                  int
		want               []string
		next               string
	}{
		{"", "", 0, sorted, ""},
		{"", "", -1, sorted, ""},
		{"", "", len(all), sorted, ""},
		{"", "", len(all) + 1, sorted, ""},
		{"a", "", 0, []string{"a", "a-1", "a-2", "ab", "abc"}, ""},
		{"ab", "", 0, []string{"ab", "abc"}, ""},
		{"my-key-1", "", 0, []string{"my-key-1", "my-key-10"}, ""},
		{"B", "", 0, []string{"B"}, ""},
		{"missing", "", 0, nil, ""},
		{"a", "", 2, []string{"a", "a-1"}, "a-2"},
		{"a", "a-2", 2, []string{"a-2", "ab"}, "abc"},
		{"a", "abc", 2, []string{"abc"}, ""},
		{"a", "aa", 0, []string{"ab", "abc"}, ""},      // continueAt need not exist
		{"a", "zzz", 0, nil, ""},                       // past the end
		{"my-key-", "b", 0, sorted[9:13], ""},          // continueAt before the prefix
		{"", "my-key-2", 1, []string{"my-key-2"}, "z"}, // continueAt is inclusive
	}
	for _, tt := range tests {
		names, next, err := s.List(ctx, tt.prefix, tt.continueAt, tt.n)
		if err != nil {
			t.Errorf("List(%q, %q, %d): %v", tt.prefix, tt.continueAt, tt.n, err)
			continue
		}
		if !slices.Equal(names, tt.want) || next != tt.next {
			t.Errorf("List(%q, %q, %d) = %q, next %q; want %q, next %q", tt.prefix, tt.continueAt, tt.n, names, next, tt.want, tt.next)
		}
	}
}

func testListPaging(t *testing.T, s keystore.Store, _ Options) {
	var all []string
	for i := range 37 {
		name := fmt.Sprintf("page-%03d", i)
		all = append(all, name)
		mustCreate(t, s, name, []byte(name))
	}
	mustCreate(t, s, "other", []byte("x"))
	for _, n := range []int{1, 2, 5, 36, 37, 38} {
		var got []string
		continueAt := ""
		for calls := 0; ; calls++ {
			if calls > len(all) {
				t.Fatalf("n=%d: paging does not end", n)
			}
			names, next, err := s.List(t.Context(), "page-", continueAt, n)
			if err != nil {
				t.Fatalf("n=%d: List(page-, %q): %v", n, continueAt, err)
			}
			if len(names) > n {
				t.Fatalf("n=%d: List returned %d names", n, len(names))
			}
			got = append(got, names...)
			if next == "" {
				break
			}
			if !strings.HasPrefix(next, "page-") || (len(names) > 0 && next <= names[len(names)-1]) {
				t.Fatalf("n=%d: next %q after %q", n, next, names)
			}
			continueAt = next
		}
		if !slices.Equal(got, all) {
			t.Errorf("n=%d: pages joined = %q, want %q", n, got, all)
		}
	}
}

func testListAfterDelete(t *testing.T, s keystore.Store, _ Options) {
	for _, name := range []string{"k1", "k2", "k3"} {
		mustCreate(t, s, name, []byte(name))
	}
	if err := s.Delete(t.Context(), "k2"); err != nil {
		t.Fatalf("Delete(k2): %v", err)
	}
	names, next, err := s.List(t.Context(), "k", "", 0)
	if err != nil || !slices.Equal(names, []string{"k1", "k3"}) || next != "" {
		t.Fatalf("List after Delete = %q, %q, %v; want [k1 k3]", names, next, err)
	}
}

func testConcurrentCreate(t *testing.T, s keystore.Store, opts Options) {
	n := opts.Concurrency
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Create(t.Context(), "contended", fmt.Appendf(nil, "value-%d", i))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("Create by goroutines %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, keystore.ErrExists):
			t.Errorf("goroutine %d: got error %v, want keystore.ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent Create succeeded")
	}
	mustGet(t, s, "contended", fmt.Appendf(nil, "value-%d", winner))
	names, _, err := s.List(t.Context(), "", "", 0)
	if err != nil || !slices.Equal(names, []string{"contended"}) {
		t.Fatalf("List after concurrent Create = %q, %v; want [contended]", names, err)
	}
}

func testConcurrentDistinct(t *testing.T, s keystore.Store, opts Options) {
	n := opts.Concurrency
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("key-%02d", i)
			value := []byte(name + "-value")
			if err := s.Create(t.Context(), name, value); err != nil {
				t.Errorf("Create(%s): %v", name, err)
				return
			}
			if v, err := s.Get(t.Context(), name); err != nil || !bytes.Equal(v, value) {
				t.Errorf("Get(%s) = %q, %v; want %q", name, v, err, value)
			}
		})
	}
	wg.Wait()
	names, _, err := s.List(t.Context(), "key-", "", 0)
	if err != nil || len(names) != n {
		t.Fatalf("List = %d names, %v; want %d", len(names), err, n)
	}
}

func testStatus(t *testing.T, s keystore.Store, _ Options) {
	state, err := s.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if state.Latency < 0 {
		t.Fatalf("Status: negative latency %v", state.Latency)
	}
	// Status does not change what is stored.
	mustCreate(t, s, "k", []byte("v"))
	if _, err := s.Status(context.WithoutCancel(t.Context())); err != nil {
		t.Fatalf("second Status: %v", err)
	}
	mustGet(t, s, "k", []byte("v"))
}

func mustCreate(t *testing.T, s keystore.Store, name string, value []byte) {
	t.Helper()
	if err := s.Create(t.Context(), name, value); err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
}

func mustGet(t *testing.T, s keystore.Store, name string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.32q…, want %d bytes %.32q…", name, len(got), got, len(want), want)
	}
}

// openStore returns a store of newStore that is closed, and its Close
// checked, when t ends.
func openStore(t *testing.T, newStore func(*testing.T) keystore.Store) keystore.Store {
	t.Helper()
	s := newStore(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
