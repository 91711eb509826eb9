// Package kes is the Go SDK of OpenKES, a drop-in successor of MinIO's KES
// key server.
//
// A [Client] talks to one or more KES servers over mutual TLS. Servers answer
// errors with a status code and a fixed message; the SDK turns them into the
// [Error] values of this package, so callers branch with errors.Is:
//
//	if errors.Is(err, kes.ErrKeyNotFound) { ... }
//
// Identities ([Identity]) and API keys ([APIKey]) are computed exactly as
// upstream KES computes them, so existing policies keep working.
//
// This package must not import anything below internal/, a key store, a cloud
// SDK or prometheus: see TestDeps.
package kes
