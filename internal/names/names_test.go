package names_test

import (
	"strings"
	"testing"

	"github.com/openkes/kes/internal/names"
)

// TestValid is the name table of spec api.md §3.1.
func TestValid(t *testing.T) {
	for name, want := range map[string]bool{
		"my-key": true, "my_key": true, "K3y": true, "a": true, "-": false, "_": false, "__": true,
		strings.Repeat("k", 80): true, strings.Repeat("k", 81): false,
		"": false, "-key": false, "key-": false, "a.b": false, "a/b": false, "../x": false, "a b": false,
		"a*": false, "ä": false, "a\x00b": false, "a\\b": false,
	} {
		if got := names.Valid(name); got != want {
			t.Errorf("Valid(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestValidPattern: listing patterns are "", "*" or a name prefix whose
// only '*' is its last byte.
func TestValidPattern(t *testing.T) {
	for pattern, want := range map[string]bool{
		"": true, "*": true, "my-key": true, "my*": true, "my-*": true, "m": true,
		"a*b": false, "**": false, "-a*": false, "_*": false, "a.b*": false, "a/*": false,
		strings.Repeat("k", 79) + "*": true, strings.Repeat("k", 80) + "*": false, "-": false,
	} {
		if got := names.ValidPattern(pattern); got != want {
			t.Errorf("ValidPattern(%q) = %v, want %v", pattern, got, want)
		}
	}
}
