package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
)

// noTicks is a ticker that never fires.
func noTicks(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

// corruptStore returns wrong values for the names in bad.
type corruptStore struct {
	keystore.Store
	bad map[string]bool
}

func (s *corruptStore) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.Store.Get(ctx, name)
	if err == nil && s.bad[name] {
		v = append(v, '!')
	}
	return v, err
}

// vanishingStore forgets created keys whose names are in gone.
type vanishingStore struct {
	keystore.Store
	gone map[string]bool
}

func (s *vanishingStore) Create(ctx context.Context, name string, value []byte) error {
	if s.gone[name] {
		return nil
	}
	return s.Store.Create(ctx, name, value)
}

func TestMigrateVerifyFails(t *testing.T) {
	ctx := t.Context()
	src := new(mem.Store)
	for i := range 30 {
		if err := src.Create(ctx, fmt.Sprintf("k%02d", i), []byte{byte(i), 0xff, 0}); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]bool{}
	for i := range 12 {
		bad[fmt.Sprintf("k%02d", i*2)] = true
	}
	dst := &corruptStore{Store: new(mem.Store), bad: bad}
	var out, errOut bytes.Buffer
	m := &Migrator{Out: &out, ErrOut: &errOut, Workers: 4, NewTicker: noTicks}
	err := m.Migrate(ctx, src, &vanishingStore{Store: dst, gone: map[string]bool{"k29": true}}, &Options{})
	var verr *VerifyError
	if !errors.As(err, &verr) || verr.Mismatches != 13 || verr.Verified != 30 {
		t.Fatalf("migrate = %v, want 13 of 30 mismatches", err)
	}
	if got, want := err.Error(), "verification failed: 13 of 30 migrated keys differ between source and target"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if len(lines) != maxReportedMismatches+1 || lines[0] != `verification failed: key "k00" differs at the target` ||
		lines[maxReportedMismatches] != "verification failed: and 3 more keys" {
		t.Errorf("reported mismatches:\n%s", errOut.String())
	}
	if strings.Contains(out.String(), "successfully") {
		t.Errorf("output %q claims success", out.String())
	}
}

// failingStore fails Get for one name.
type failingStore struct {
	keystore.Store
	name string
}

var errBroken = errors.New("broken disk")

func (s *failingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if name == s.name {
		return nil, errBroken
	}
	return s.Store.Get(ctx, name)
}

func TestMigrateStopsAtError(t *testing.T) {
	ctx := t.Context()
	src := new(mem.Store)
	const n = 3000 // more than two pages
	for i := range n {
		if err := src.Create(ctx, fmt.Sprintf("k%04d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	dst := new(mem.Store)
	m := &Migrator{Out: new(bytes.Buffer), ErrOut: new(bytes.Buffer), Workers: 8, NewTicker: noTicks}
	err := m.Migrate(ctx, &failingStore{Store: src, name: "k1500"}, dst, &Options{})
	if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), `"k1500"`) {
		t.Fatalf("migrate = %v, want %v naming k1500", err, errBroken)
	}
	names, _, err := dst.List(ctx, "", "", 2*n)
	if err != nil {
		t.Fatal(err)
	}
	// Every key of the first page and those of the failing page before
	// k1500 are there; nothing after the failing page was touched.
	if len(names) < 1500 || slices.ContainsFunc(names, func(s string) bool { return s >= "k2048" }) {
		t.Errorf("target holds %d keys, last %q", len(names), names[len(names)-1])
	}
}

func TestLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"*": "", "": "", "key-*": "key-", "a?c": "a", "ab[c]": "ab", `a\*`: "a", "exact": "exact",
	} {
		if got := literalPrefix(pattern); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestMigrateCancel(t *testing.T) {
	src := new(mem.Store)
	for i := range 100 {
		if err := src.Create(t.Context(), fmt.Sprintf("k%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := &Migrator{Out: new(bytes.Buffer), ErrOut: new(bytes.Buffer), Workers: 2, NewTicker: noTicks}
	if err := m.Migrate(ctx, src, new(mem.Store), &Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("migrate = %v, want %v", err, context.Canceled)
	}
}

func TestMigrateConflictIsKeyExists(t *testing.T) {
	ctx := t.Context()
	src, dst := new(mem.Store), new(mem.Store)
	for _, s := range []*mem.Store{src, dst} {
		if err := s.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	m := &Migrator{Out: new(bytes.Buffer), ErrOut: new(bytes.Buffer), NewTicker: noTicks}
	err := m.Migrate(ctx, src, dst, &Options{})
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("migrate = %v, want %v", err, keystore.ErrExists)
	}
}
