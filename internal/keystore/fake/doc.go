// Package fake holds in-process servers that speak the wire protocols of key
// stores no real server can run for in this repository's tests: GCP Secret
// Manager (gRPC), Azure Key Vault secrets, Fortanix DSM, Thales CipherTrust
// (KeySecure) and Entrust KeyControl (REST). Each keeps its secrets in memory,
// records every request so tests can check it field by field, and can be
// told to fail as the vendor does (throttling, expired credentials, 5xx,
// answers slower than the caller's deadline).
//
// Where a real server can run (Vault, the AWS emulators) tests use it, not a
// fake. This package is imported by tests only.
package fake
