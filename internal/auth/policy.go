package auth

import (
	"path"
	"slices"
	"strings"
)

// Policy is a compiled set of allow and deny patterns (see the package doc
// for the pattern semantics).
//
// A Policy is immutable once created and safe for concurrent use. The zero
// value and a nil *Policy reject every path.
type Policy struct {
	allow, deny       matcher
	allowSrc, denySrc []string // the patterns as given, for describe/read
}

// NewPolicy compiles the allow and deny patterns into a [Policy]. Patterns
// are not validated, as upstream does not validate them either: an empty
// pattern never matches and a malformed glob only matches under the current
// rule. NewPolicy copies the slices; the caller keeps ownership of them.
func NewPolicy(allow, deny []string) *Policy {
	return &Policy{
		allow:    compile(allow),
		deny:     compile(deny),
		allowSrc: slices.Clone(allow),
		denySrc:  slices.Clone(deny),
	}
}

// Allows reports whether the policy accepts the request path: no deny
// pattern matches it and at least one allow pattern does. path is the decoded
// URL path with its leading '/' and without the query.
//
// Allows does not allocate.
func (p *Policy) Allows(path string) bool {
	if p == nil || p.deny.match(path) {
		return false
	}
	return p.allow.match(path)
}

// Names reports whether the policy accepts the request path by naming it:
// no deny pattern matches it and an allow pattern is exactly the path,
// without any wildcard. It decides the routes that only an explicit
// delegation may open to a policy (see [Authorizer.CheckDelegated]).
//
// Names does not allocate.
func (p *Policy) Names(path string) bool {
	if p == nil || hasMeta(path) || p.deny.match(path) {
		return false
	}
	_, ok := p.allow.exact[path]
	return ok
}

// Allow returns a copy of the allow patterns in the order given to
// [NewPolicy]. The caller owns the returned slice.
func (p *Policy) Allow() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.allowSrc)
}

// Deny returns a copy of the deny patterns in the order given to
// [NewPolicy]. The caller owns the returned slice.
func (p *Policy) Deny() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.denySrc)
}

// matcher matches a path against a set of patterns under the union of the
// current and the legacy rule. Each pattern is split at compile time into
// the cheapest checks that together give the same answer:
//
//   - exact: patterns without a trailing '*' (current rule: equality);
//   - prefixes: patterns with a trailing '*', minus that '*' (current rule);
//   - globs: well-formed patterns with a glob meta character that the two
//     checks above do not already cover (legacy rule).
//
// A pattern without meta characters is, as a glob, plain equality, and a
// pattern whose only meta character is its trailing '*' matches as a glob a
// subset of what its prefix matches; neither needs a glob entry.
type matcher struct {
	exact    map[string]struct{}
	prefixes []string
	globs    []string
}

func compile(patterns []string) matcher {
	var m matcher
	for _, p := range patterns {
		if p == "" {
			continue // never matches; as a glob it would only match "", which no request path is
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if !slices.Contains(m.prefixes, prefix) {
				m.prefixes = append(m.prefixes, prefix)
			}
			if !hasMeta(prefix) {
				continue
			}
		} else {
			if m.exact == nil {
				m.exact = make(map[string]struct{})
			}
			m.exact[p] = struct{}{}
			if !hasMeta(p) {
				continue
			}
		}
		if validGlob(p) && !slices.Contains(m.globs, p) {
			m.globs = append(m.globs, p)
		}
	}
	// Shortest prefixes first: they are the broad ones ("/v1/key/*") and
	// tend to decide early.
	slices.SortStableFunc(m.prefixes, func(a, b string) int { return len(a) - len(b) })
	return m
}

func (m *matcher) match(p string) bool {
	if _, ok := m.exact[p]; ok {
		return true
	}
	for _, prefix := range m.prefixes {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	for _, g := range m.globs {
		if ok, err := path.Match(g, p); ok && err == nil {
			return true
		}
	}
	return false
}

// hasMeta reports whether s contains a byte with a meaning in path.Match.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// validGlob reports whether g is a well-formed path.Match pattern. path.Match
// checks the whole pattern even when the name does not match, so matching
// against "" finds every syntax error.
func validGlob(g string) bool {
	_, err := path.Match(g, "")
	return err == nil
}
