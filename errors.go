package kes

import (
	"fmt"
	"net/http"
	"time"
)

// Error is an error answered by a KES server: the HTTP status code and the
// message of the JSON error body.
//
// The messages of the values below are API: MinIO and scripts match on them,
// so their text never changes.
type Error struct {
	Status int    // HTTP status code
	Msg    string // message of the error body
}

// NewError returns an [*Error] with the given status code and message.
func NewError(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// Errorf returns an [*Error] with the given status code and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is an [*Error] with the same status and message,
// so that an error decoded from a response matches the values below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e != nil && e.Status == t.Status && e.Msg == t.Msg
}

// Errors answered by KES servers (spec api.md §2).
var (
	// ErrKeyNotFound is returned when the named key does not exist.
	ErrKeyNotFound = NewError(http.StatusNotFound, "key does not exist")
	// ErrKeyExists is returned when a key with the name exists already.
	ErrKeyExists = NewError(http.StatusBadRequest, "key already exists")
	// ErrPolicyNotFound is returned when the named policy does not exist.
	ErrPolicyNotFound = NewError(http.StatusNotFound, "policy does not exist")
	// ErrIdentityNotFound is returned when the identity is neither the admin
	// nor assigned to a policy.
	ErrIdentityNotFound = NewError(http.StatusNotFound, "identity does not exist")
	// ErrNotAllowed is returned when the client identity is unknown or its
	// policy does not allow the request.
	ErrNotAllowed = NewError(http.StatusForbidden, "not authorized: insufficient permissions")
	// ErrDecrypt is returned when a ciphertext is malformed, was not produced
	// by the key, or the context does not match.
	ErrDecrypt = NewError(http.StatusBadRequest, "decryption failed: ciphertext is not authentic")
	// ErrNoHMAC is returned by the HMAC API for keys stored in a pre-2024
	// format, which carry no HMAC key.
	ErrNoHMAC = NewError(http.StatusConflict, "key does not support HMAC")
	// ErrInvalidBody is returned when a request body is not valid JSON, has
	// the wrong shape or is larger than the route allows.
	ErrInvalidBody = NewError(http.StatusBadRequest, "invalid request body")
	// ErrInvalidImportBody is ErrInvalidBody of the import API.
	ErrInvalidImportBody = NewError(http.StatusBadRequest, "invalid import key request body")
	// ErrNoClientCert is returned when a request carries no client certificate.
	ErrNoClientCert = NewError(http.StatusBadRequest, "tls: client certificate is required")
	// ErrManyClientCerts is returned when a client sends more than one
	// non-CA certificate.
	ErrManyClientCerts = NewError(http.StatusBadRequest, "tls: received more than one client certificate")
	// ErrInsecureConnection is returned for requests that do not use TLS.
	ErrInsecureConnection = NewError(http.StatusBadRequest, "insecure connection: TLS is required")
	// ErrStoreUnreachable is returned by the readiness API when the key store
	// cannot be reached.
	ErrStoreUnreachable = NewError(http.StatusGatewayTimeout, "key store is not reachable")
	// ErrStoreUnavailable is returned by the readiness API when the key store
	// answers with an error.
	ErrStoreUnavailable = NewError(http.StatusBadGateway, "key store is unavailable")
	// ErrTooManyRequests is returned when the client's identity sends
	// requests faster than the server's rate limit allows (an OpenKES
	// extension; upstream servers have no rate limits). The response's
	// Retry-After header says in how many seconds to try again; a
	// [Client] waits and retries, and returns a [*RateLimitError] that
	// wraps this value once it gives up.
	ErrTooManyRequests = NewError(http.StatusTooManyRequests, "too many requests")
)

// Errors of soft deletion, an OpenKES extension (docs/key-deletion.md).
// Upstream servers never answer them.
var (
	// ErrKeyProtected is returned when a key that the server protects
	// from deletion is deleted or purged. Nothing is changed.
	ErrKeyProtected = NewError(http.StatusForbidden, "key is protected from deletion")

	// ErrKeyNotDeleted is returned when a key to restore or describe as
	// deleted has no soft-deleted copy (never deleted, or purged).
	ErrKeyNotDeleted = NewError(http.StatusNotFound, "deleted key does not exist")

	// ErrKeyLive is returned when a deleted key is restored while a key
	// of its name exists. Nothing is changed.
	ErrKeyLive = NewError(http.StatusConflict, "key exists: a deleted key cannot be restored over it")
)

// RateLimitError is returned by a [Client] whose request was answered
// 429 by every endpoint it tried, after [MaxRateLimitRetries] waits on
// each, or earlier when the wait the server asked for would outlast the
// request's context. It wraps the server's answer, so
// errors.Is(err, [ErrTooManyRequests]) holds for OpenKES servers.
type RateLimitError struct {
	Host string // the endpoint that answered last, e.g. "127.0.0.1:7373"
	// RetryAfter is how long that endpoint asked the client to wait
	// (its Retry-After header); 0 if it did not say.
	RetryAfter time.Duration
	Err        *Error // the answer: status 429 and its message
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (retry after %v)", e.Err.Msg, e.RetryAfter)
	}
	return e.Err.Msg
}

// Unwrap returns the server's answer.
func (e *RateLimitError) Unwrap() error { return e.Err }

// Errors of the key version API, an OpenKES extension (docs/key-rotation.md).
var (
	// ErrKeyVersionNotFound is returned when a request names a version the
	// key does not have.
	ErrKeyVersionNotFound = NewError(http.StatusNotFound, "key version does not exist")
	// ErrKeyVersionDisabled is returned when a request asks a disabled
	// version to encrypt; disabled versions still decrypt.
	ErrKeyVersionDisabled = NewError(http.StatusConflict, "key version is disabled")
	// ErrCurrentKeyVersion is returned when the current version is to be
	// disabled.
	ErrCurrentKeyVersion = NewError(http.StatusConflict, "the current key version cannot be disabled")
	// ErrTooManyKeyVersions is returned when a rotation would give a key
	// more versions than a stored record can hold (256).
	ErrTooManyKeyVersions = NewError(http.StatusConflict, "key has too many versions")
	// ErrKeyChanged is returned when a rotation lost the race against
	// other changes of the key too many times in a row.
	ErrKeyChanged = NewError(http.StatusConflict, "key changed concurrently: try again")
	// ErrRotateUnsupported is returned when the key store cannot replace a
	// stored key atomically (compare-and-swap), so keys cannot be rotated.
	ErrRotateUnsupported = NewError(http.StatusNotImplemented, "key store cannot rotate keys atomically")
	// ErrTooManyCiphertexts is returned by the bulk re-wrap API for more
	// ciphertexts than it takes in one request (1000).
	ErrTooManyCiphertexts = NewError(http.StatusBadRequest, "too many ciphertexts")
)

// Legacy errors that servers before 2023-10 answered and clients still
// recognise (spec api.md §5).
var (
	errLegacyKeyExists  = NewError(http.StatusBadRequest, "key does already exist")
	errLegacyNotAllowed = NewError(http.StatusForbidden, "prohibited by policy")
)

// ErrInvalidKeyName returns the error for a key name that is empty, too long
// or contains characters outside [0-9A-Za-z_-].
func ErrInvalidKeyName(name string) *Error {
	return Errorf(http.StatusBadRequest, "key name '%s' is empty, too long or contains invalid characters", name)
}

// ErrInvalidPolicyName returns the error for an invalid policy name.
func ErrInvalidPolicyName(name string) *Error {
	return Errorf(http.StatusBadRequest, "policy name '%s' is empty, too long or contains invalid characters", name)
}

// ErrInvalidIdentity returns the error for an invalid identity.
func ErrInvalidIdentity(id string) *Error {
	return Errorf(http.StatusBadRequest, "identity '%s' is empty, too long or contains invalid characters", id)
}

// ErrInvalidPattern returns the error for an invalid listing pattern.
func ErrInvalidPattern(pattern string) *Error {
	return Errorf(http.StatusBadRequest, "listing pattern '%s' is empty, too long or is invalid", pattern)
}

// ErrMethod returns the error for a request whose method the route does not accept.
func ErrMethod(got, want string) *Error {
	return Errorf(http.StatusMethodNotAllowed, "received method '%s' expected '%s'", got, want)
}

// canonical maps legacy error texts to the current values so that errors.Is
// works against old servers too.
func canonical(e *Error) *Error {
	switch {
	case e.Is(errLegacyKeyExists):
		return ErrKeyExists
	case e.Is(errLegacyNotAllowed):
		return ErrNotAllowed
	}
	return e
}
