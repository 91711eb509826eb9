// Package names holds the rules for names of keys, policies and identities
// in API paths (spec api.md §3.1).
package names

// MaxLen is the longest valid name in bytes.
const MaxLen = 80

// Valid reports whether s is a valid key, policy or identity name: 1 to 80
// bytes of [0-9A-Za-z_-], '-' neither first nor last, and not exactly "_".
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen || s == "_" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

// ValidPattern reports whether s is a valid listing pattern: empty, "*", or
// a name prefix whose only '*' is its last byte.
func ValidPattern(s string) bool {
	if s == "" || s == "*" {
		return true
	}
	if s[len(s)-1] == '*' {
		s = s[:len(s)-1]
		if s == "" || len(s) >= MaxLen {
			return len(s) < MaxLen
		}
		// A prefix may end with '-' ("my-*"): only the leading byte is restricted.
		if s[0] == '-' || s == "_" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !isNameByte(s[i]) {
				return false
			}
		}
		return true
	}
	return Valid(s)
}

func isNameByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_'
}
