package keystore_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/openkes/kes/internal/keystore"
)

func TestPage(t *testing.T) {
	all := func() []string { return []string{"b2", "a1", "b1", "c", "b3", "a2"} }
	for _, tt := range []struct {
		prefix, continueAt string
		n                  int
		page               []string
		next               string
	}{
		{"", "", 0, []string{"a1", "a2", "b1", "b2", "b3", "c"}, ""},
		{"b", "", 0, []string{"b1", "b2", "b3"}, ""},
		{"b", "", 2, []string{"b1", "b2"}, "b3"},
		{"b", "b3", 2, []string{"b3"}, ""},
		{"", "b2", 3, []string{"b2", "b3", "c"}, ""},
		{"x", "", 0, nil, ""},
		{"", "z", 0, nil, ""},
	} {
		page, next := keystore.Page(all(), tt.prefix, tt.continueAt, tt.n)
		if !slices.Equal(page, tt.page) || next != tt.next {
			t.Errorf("Page(%q, %q, %d) = %v, %q; want %v, %q", tt.prefix, tt.continueAt, tt.n, page, next, tt.page, tt.next)
		}
	}
	many := make([]string, keystore.ListPageSize+1)
	for i := range many {
		many[i] = fmt.Sprintf("k%05d", i)
	}
	if page, next := keystore.Page(many, "", "", 0); len(page) != keystore.ListPageSize || next != many[keystore.ListPageSize] {
		t.Errorf("default page size: %d names, next %q", len(page), next)
	}
}

func TestIsUnreachable(t *testing.T) {
	err := fmt.Errorf("vault: get key: %w", &keystore.UnreachableError{Err: errors.New("connection refused")})
	if !keystore.IsUnreachable(err) || keystore.IsUnreachable(errors.New("other")) {
		t.Fatal("IsUnreachable does not look through wrapping")
	}
}
