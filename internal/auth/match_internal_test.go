package auth

import (
	"path"
	"strings"
	"testing"
)

// currentRule is the pattern rule of upstream releases since 2023-10-24
// (spec identity-and-auth.md §4.1).
func currentRule(pattern, p string) bool {
	if pattern == "" {
		return false
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(p, prefix)
	}
	return pattern == p
}

// legacyRule is the pattern rule of upstream releases up to 2023-10-03: a
// path.Match glob; a malformed glob matches nothing.
func legacyRule(pattern, p string) bool {
	ok, err := path.Match(pattern, p)
	return ok && err == nil
}

// matchPattern is the reference definition of one OpenKES pattern. The
// compiled matcher must agree with it. The empty pattern never matches,
// although path.Match("", "") is true: no request path is empty.
func matchPattern(pattern, p string) bool {
	return pattern != "" && (currentRule(pattern, p) || legacyRule(pattern, p))
}

// TestSpecTable checks every row of the table in identity-and-auth.md §4.1
// against both reference rules, and that the compiled matcher answers their
// union.
func TestSpecTable(t *testing.T) {
	tests := []struct {
		name, pattern, path string
		current, legacy     bool
	}{
		{"trailing-star", "/v1/key/create/my-key*", "/v1/key/create/my-key2", true, true},
		{"star-spans-slash", "/v1/key/*", "/v1/key/create/x", true, false},
		{"inner-star", "/v1/key/*/my-key", "/v1/key/decrypt/my-key", false, true},
		{"two-stars", "/v1/key/*/*", "/v1/key/decrypt/a", false, true},
		{"list-star", "/v1/key/list/*", "/v1/key/list/app", true, true},
		{"exact", "/v1/status", "/v1/status", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := currentRule(tt.pattern, tt.path); got != tt.current {
				t.Errorf("current rule: got %v, want %v", got, tt.current)
			}
			if got := legacyRule(tt.pattern, tt.path); got != tt.legacy {
				t.Errorf("legacy rule: got %v, want %v", got, tt.legacy)
			}
			m := compile([]string{tt.pattern})
			if got, want := m.match(tt.path), tt.current || tt.legacy; got != want {
				t.Errorf("compiled: got %v, want %v", got, want)
			}
		})
	}
}

func TestCompileSplit(t *testing.T) {
	tests := []struct {
		name                   string
		pattern                string
		exact, prefixes, globs int
	}{
		{"exact", "/v1/status", 1, 0, 0},
		{"prefix", "/v1/key/create/*", 0, 1, 0},
		{"inner-star", "/v1/key/*/my-key", 1, 0, 1},
		{"inner-and-trailing-star", "/v1/key/*/my-*", 0, 1, 1},
		{"question-mark", "/v1/key/create/k?", 1, 0, 1},
		{"malformed-glob", "/v1/key/create/[", 1, 0, 0},
		{"empty", "", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := compile([]string{tt.pattern})
			if len(m.exact) != tt.exact || len(m.prefixes) != tt.prefixes || len(m.globs) != tt.globs {
				t.Errorf("got exact=%d prefixes=%d globs=%d, want %d %d %d",
					len(m.exact), len(m.prefixes), len(m.globs), tt.exact, tt.prefixes, tt.globs)
			}
		})
	}
}

// FuzzMatch checks that the compiled matcher never panics, agrees with the
// reference definition, and that a pattern with a trailing '*' matches
// every path that strings.HasPrefix accepts.
func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"/v1/key/create/my-key*", "/v1/key/create/my-key2"},
		{"/v1/key/*", "/v1/key/create/x"},
		{"/v1/key/*/my-key", "/v1/key/decrypt/my-key"},
		{"/v1/key/*/*", "/v1/key/decrypt/a"},
		{"/v1/status", "/v1/status"},
		{"/v1/key/[a-", "/v1/key/a"},
		{`/v1/key/\`, `/v1/key/\`},
		{"[*", "["},
		{"*", ""},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		m := compile([]string{pattern})
		got := m.match(p)
		if want := matchPattern(pattern, p); got != want {
			t.Fatalf("match(%q, %q) = %v, reference says %v", pattern, p, got, want)
		}
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(p, prefix) && !got {
			t.Fatalf("prefix pattern %q does not match %q", pattern, p)
		}
		pol := NewPolicy([]string{pattern}, nil)
		if pol.Allows(p) != got {
			t.Fatalf("Policy.Allows(%q) disagrees with matcher for %q", p, pattern)
		}
		if NewPolicy([]string{pattern}, []string{pattern}).Allows(p) {
			t.Fatalf("deny %q did not win for %q", pattern, p)
		}
	})
}
