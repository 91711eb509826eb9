// Package auth identifies KES clients and decides what they may do.
//
// It has four parts:
//
//   - [IdentifyTLS] computes a client's [kes.Identity] from the first certificate
//     of its TLS connection (spec identity-and-auth.md §1).
//   - [Proxy] is the TLS-proxy mode (identity-and-auth.md §6): which
//     connections are proxies, and the identity of the client certificate a
//     proxy forwards in a header ([ParseForwardedCert], [ForwardedIP]).
//   - [Policy] is a compiled set of allow and deny patterns matched against
//     request paths (identity-and-auth.md §4.1).
//   - [Authorizer] holds the admin identity, the policies and the
//     identity → policy assignments. It answers the per-request question
//     "may this identity call this path?" ([Authorizer.Authorize]) and the
//     describe/list questions of the policy and identity API. It also applies
//     the legacy ephemeral changes (write/delete policy, assign/forget
//     identity): they live in memory only, and a new Authorizer built from
//     the configuration brings back exactly the configured state.
//
// # Pattern semantics
//
// Upstream KES changed the meaning of policy patterns in release 2023-10-24.
// Before, a pattern was a Go [path.Match] glob over the whole path ("legacy"
// rule: '*' matches a run of non-'/' bytes, '?', '[...]' and '\' escapes
// work). Since then a pattern ending in '*' is a prefix match whose wildcard
// spans '/', and any other pattern must equal the path exactly ("current"
// rule; a '*' elsewhere is a literal byte).
//
// Configurations written for either era exist in the field, and the
// documentation still teaches the legacy idiom "/v1/key/*/my-key". OpenKES
// therefore lets a pattern match when EITHER rule matches it:
//
//	pattern              path                     current  legacy  OpenKES
//	/v1/key/create/k*    /v1/key/create/k2        yes      yes     yes
//	/v1/key/*            /v1/key/create/x         yes      no      yes
//	/v1/key/*/my-key     /v1/key/decrypt/my-key   no       yes     yes
//	/v1/key/*/*          /v1/key/decrypt/a        no       yes     yes
//
// A malformed glob (for example an unclosed '[') never matches under the
// legacy rule, but may still match under the current rule. The empty pattern
// never matches. Deny patterns are checked first: a path matched by any deny
// pattern is rejected, otherwise it is accepted when an allow pattern matches
// it. A policy without allow patterns rejects everything.
//
// The union is never narrower than either upstream era, so no client loses
// access it had; it can be wider than HEAD for patterns with glob meta
// characters other than a trailing '*'. Administrators who want the strict
// current behaviour should avoid '?', '[', '\' and inner '*' in patterns.
//
// # Identities
//
// Identities are public (the hash of a public key) and are compared as exact,
// case-sensitive strings. Comparisons with the admin identity therefore need
// not run in constant time, and they do not.
//
// This package must not import internal/api, a key store, config or metrics:
// it sits below the API layer and depends only on the SDK and internal/names.
package auth
