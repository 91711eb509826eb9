package config

import (
	"errors"
	"fmt"
)

// Error is a configuration error at a position of a file. Its text is
// "<file>:<line>: <message>"; the message keeps upstream's exact wording
// (spec config.md) where the spec gives one.
type Error struct {
	File string // name of the file, as given to [Parse]
	Line int    // 1-based line; 0 if unknown
	Err  error  // what is wrong
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors with a fixed text. Callers and tests find them with errors.Is in
// the chain of an [*Error].
var (
	ErrNoAdmin           = errors.New("kesconf: invalid admin identity: no admin identity")
	ErrNoPrivateKey      = errors.New("kesconf: invalid tls config: no private key")
	ErrNoCertificate     = errors.New("kesconf: invalid tls config: no certificate")
	ErrNoKeyStore        = errors.New("kesconf: no keystore specified")
	ErrMultipleKeyStores = errors.New("kesconf: invalid keystore config: more than once keystore specified")
	ErrFileTooLarge      = errors.New("kesconf: config file is too large")
)

// EnvError reports a "${NAME}" reference to an environment variable that is
// not set.
type EnvError struct {
	Name string
	Line int
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("kesconf: referenced env. variable '%s' in line '%d' not found", e.Name, e.Line)
}

// UnknownKeyError reports a key that the schema does not have. Key is the
// dotted path, e.g. "tls.foo".
type UnknownKeyError struct {
	Key string
}

func (e *UnknownKeyError) Error() string { return fmt.Sprintf("kesconf: unknown key '%s'", e.Key) }

// DuplicateKeyError reports a mapping key given twice. FirstLine is the line
// of its first occurrence; the [*Error] carries the line of the second.
type DuplicateKeyError struct {
	Key       string
	FirstLine int
}

func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("kesconf: key '%s' is defined multiple times (first at line %d)", e.Key, e.FirstLine)
}

// TypeError reports a value of the wrong kind or format, e.g. a sequence
// where a mapping belongs or a bare integer where a duration belongs.
type TypeError struct {
	Key  string // dotted path of the value
	Want string // "mapping", "sequence", "string", "bool", "duration", ...
	Got  string // what was found; for a malformed scalar its text
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("kesconf: invalid value for '%s': expected %s, found %s", e.Key, e.Want, e.Got)
}

// RemovedKeyStoreError reports a keystore backend that upstream KES removed
// (generic plugins, KES-in-KES).
type RemovedKeyStoreError struct {
	Name string
}

func (e *RemovedKeyStoreError) Error() string {
	return fmt.Sprintf("kesconf: keystore '%s' is no longer supported; use one of the other keystores", e.Name)
}
