// Package hsm wraps any key store so that every record it stores is
// encrypted under a non-extractable AES-256 key inside a hardware security
// module reached through PKCS#11 (docs/hsm.md).
//
// The layer sits between the key cache and the store: [Wrap] takes a
// connected store and returns one whose Create encrypts the record with
// AES-256-GCM inside the HSM (the key never leaves it), with the key name as
// additional data, and whose Get decrypts it. Records the store held before
// (spec crypto.md §2.1 and §2.2) stay readable as they are; kes migrate
// re-wraps them. The record encoding is [EncodeRecord]'s.
//
// PKCS#11 needs cgo: a binary built with CGO_ENABLED=0 has this package
// but [Wrap] fails with [ErrNoPKCS11].
//
// The package imports internal/keystore, internal/crypto (for the record
// prefix) and the PKCS#11 binding, nothing else of the server.
package hsm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
)

// DefaultSessions is the number of PKCS#11 sessions a store opens at most
// when [Config.Sessions] is zero.
const DefaultSessions = 8

// MaxValueSize is the largest record the layer wraps, in bytes: the largest
// record the server parses (crypto.MaxRecordSize).
const MaxValueSize = crypto.MaxRecordSize

// Config is the hsm section of a configuration file. It holds a secret
// (PIN): print it only through its String method.
type Config struct {
	// Module is the path of the PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so. Required.
	Module string

	// Token is the label of the token holding the key. Empty means Slot
	// selects the token.
	Token string

	// Slot is the slot number of the token, used only if Token is empty.
	// Nil with an empty Token is an error.
	Slot *uint

	// PIN is the user PIN. Empty means PINFile holds it.
	PIN string

	// PINFile is a file whose content (without a trailing newline) is the
	// user PIN; read when the store connects. Used only if PIN is empty.
	PINFile string

	// Key is the label (CKA_LABEL) of the AES-256 key that wraps the
	// records. It must be non-extractable. Required.
	Key string

	// Sessions is the number of PKCS#11 sessions open at most. Zero means
	// DefaultSessions; negative is an error.
	Sessions int
}

// String describes c without its PIN, for the banner and logs.
func (c Config) String() string {
	token := "token " + strconv.Quote(c.Token)
	if c.Token == "" && c.Slot != nil {
		token = "slot " + strconv.FormatUint(uint64(*c.Slot), 10)
	}
	return fmt.Sprintf("PKCS#11 %s, %s, key %q (AES-256-GCM)", c.Module, token, c.Key)
}

// LogValue keeps the PIN out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// GoString keeps the PIN out of %#v.
func (c Config) GoString() string { return "hsm.Config{" + c.String() + "}" }

// Check reports the first missing or contradictory field of c.
func (c *Config) Check() error {
	switch {
	case c.Module == "":
		return errors.New("no PKCS#11 module specified")
	case c.Token == "" && c.Slot == nil:
		return errors.New("no token label or slot specified")
	case c.Token != "" && c.Slot != nil:
		return errors.New("only one of token and slot may be specified")
	case c.PIN == "" && c.PINFile == "":
		return errors.New("no PIN or PIN file specified")
	case c.PIN != "" && c.PINFile != "":
		return errors.New("only one of pin and pin_file may be specified")
	case c.Key == "":
		return errors.New("no key label specified")
	case c.Sessions < 0:
		return errors.New("sessions must not be negative")
	}
	return nil
}

// Errors of the layer. None of them matches keystore.ErrNotFound: a missing
// HSM key is not a missing KES key.
var (
	// ErrNoPKCS11 is returned by [Wrap] in a binary built without cgo.
	ErrNoPKCS11 = errors.New("hsm: this kes binary was built without cgo and cannot load a PKCS#11 module; use a build with CGO_ENABLED=1")

	// ErrUnwrap means a wrapped record does not decrypt under the HSM key
	// for its name: it was wrapped under another key, copied from another
	// name, or changed.
	ErrUnwrap = errors.New("hsm: the record does not decrypt under the HSM key for this name (another key, another name, or changed)")

	// ErrNoKey means the token holds no AES key with the configured label.
	ErrNoKey = errors.New("hsm: the token holds no AES key with this label")

	// ErrPIN means the token refused the PIN. The layer then stops logging
	// in, so that retries do not lock the token.
	ErrPIN = errors.New("hsm: the token refused the PIN")

	// ErrExtractable means the configured key may leave the HSM.
	ErrExtractable = errors.New("hsm: the key is extractable (CKA_EXTRACTABLE); create it with CKA_EXTRACTABLE false")

	// ErrTooLarge means a value is larger than MaxValueSize.
	ErrTooLarge = errors.New("hsm: value too large to wrap")
)

// cipher is the HSM key: AES-256-GCM with a 96-bit IV and a 128-bit tag,
// computed inside the token. Implementations are safe for concurrent use.
type cipher interface {
	// seal returns ciphertext||tag of plain and the IV it used: iv, or
	// one the token chose.
	seal(ctx context.Context, iv, aad, plain []byte) (usedIV, sealed []byte, err error)
	// open returns the plaintext of ciphertext||tag; an authentication
	// failure matches ErrUnwrap.
	open(ctx context.Context, iv, aad, sealed []byte) ([]byte, error)
	close() error
}

// Counters are the process's HSM operation counts since start, for the
// kes_hsm_* metrics: every encrypt and decrypt (status probes included)
// and those that failed. They are per process, as a PKCS#11 library's state
// is; safe for concurrent use.
func Counters() (ops, errs uint64) { return counters.ops.Load(), counters.errs.Load() }

var counters struct{ ops, errs atomic.Uint64 }

func count(err error) {
	counters.ops.Add(1)
	if err != nil {
		counters.errs.Add(1)
	}
}

// Wrap connects to the HSM of c and returns a store that keeps the records
// of inner wrapped under the HSM key. The returned store implements
// keystore.Replacer if inner does, and never keystore.Renamer: a record's
// name is bound into its wrapping, so a record moved to another name would
// not unwrap (soft deletion copies instead). It takes ownership of inner: closing the
// store closes inner, and inner is closed if Wrap fails.
//
// Wrap fails, and writes nothing, if the HSM cannot be reached (an error
// wrapping *keystore.UnreachableError), refuses the PIN ([ErrPIN]), has no
// such key ([ErrNoKey]), or if the first wrapped record the store lists
// does not decrypt under the key ([ErrUnwrap]: the store was wrapped under
// another key). logger receives the session re-opens; nil means
// slog.Default(). The PIN is never logged.
func Wrap(ctx context.Context, inner keystore.Store, c *Config, logger *slog.Logger) (keystore.Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := c.Check(); err != nil {
		inner.Close()
		return nil, fmt.Errorf("hsm: %w", err)
	}
	k, err := openToken(ctx, c, logger)
	if err != nil {
		inner.Close()
		return nil, err
	}
	s := &Store{inner: inner, key: k, desc: c.String()}
	if err := s.checkKey(ctx); err != nil {
		s.Close()
		return nil, err
	}
	switch inner.(type) {
	case keystore.Overwriter:
		return &overwriterStore{replacerStore{s}}, nil
	case keystore.Replacer:
		return &replacerStore{s}, nil
	}
	return s, nil
}

// Store is a key store whose records are wrapped by an HSM key. Create it
// with [Wrap]. It is safe for concurrent use.
type Store struct {
	inner keystore.Store
	key   cipher
	desc  string
}

var _ keystore.Store = (*Store)(nil)

// replacerStore is a Store over a keystore.Replacer.
type replacerStore struct{ *Store }

var _ keystore.Replacer = (*replacerStore)(nil)

// overwriterStore is a Store over a keystore.Overwriter: replacing a
// wrapped record in place is what the inner store's Replace does.
type overwriterStore struct{ replacerStore }

var _ keystore.Overwriter = (*overwriterStore)(nil)

// ReplacesInPlace implements keystore.Overwriter.
func (*overwriterStore) ReplacesInPlace() {}

// checkKey opens the first wrapped record among the first names of the
// store, so that a store wrapped under another key fails at start, before
// anything is written.
func (s *Store) checkKey(ctx context.Context) error {
	const probe = 16
	names, _, err := s.inner.List(ctx, "", "", probe)
	if err != nil {
		return fmt.Errorf("hsm: list keys to check the HSM key: %w", err)
	}
	for _, name := range names {
		v, err := s.inner.Get(ctx, name)
		if errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hsm: read key %q to check the HSM key: %w", name, err)
		}
		if !IsWrapped(v) {
			continue
		}
		plain, err := s.unwrap(ctx, name, v)
		clear(plain)
		if err != nil {
			return fmt.Errorf("hsm: check the HSM key on key %q: %w", name, err)
		}
		return nil
	}
	return nil
}

// Status probes the store, then the HSM key (one encryption), and returns
// the sum of both latencies. An HSM that cannot be reached makes it fail
// with an error wrapping *keystore.UnreachableError.
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	state, err := s.inner.Status(ctx)
	if err != nil {
		return state, err
	}
	start := time.Now()
	// A fresh IV: GCM must never see one twice under the key.
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return keystore.State{}, err
	}
	_, _, err = s.key.seal(ctx, iv, []byte(crypto.HSMRecordPrefix+"status"), []byte{0})
	if err != nil {
		return keystore.State{}, fmt.Errorf("hsm: status: %w", err)
	}
	state.Latency += time.Since(start)
	return state, nil
}

// Create wraps value and stores it under name. A value that is already a
// wrapped record (kes migrate between two wrapped stores) is stored
// unchanged if it decrypts under the key for name, and refused with
// [ErrUnwrap] if not.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	rec, err := s.record(ctx, name, value)
	if err != nil {
		return err
	}
	return s.inner.Create(ctx, name, rec)
}

// record returns what Create stores for value.
func (s *Store) record(ctx context.Context, name string, value []byte) ([]byte, error) {
	if IsWrapped(value) {
		plain, err := s.unwrap(ctx, name, value)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("hsm: create %q: %w", name, err)
		}
		return bytes.Clone(value), nil
	}
	rec, err := s.wrap(ctx, name, value)
	if err != nil {
		return nil, fmt.Errorf("hsm: create %q: %w", name, err)
	}
	return rec, nil
}

// Get returns the record stored under name, unwrapped; a record stored
// before the layer (not wrapped) is returned as stored.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.inner.Get(ctx, name)
	if err != nil || !IsWrapped(v) {
		return v, err
	}
	plain, err := s.unwrap(ctx, name, v)
	if err != nil {
		return nil, fmt.Errorf("hsm: get %q: %w", name, err)
	}
	return plain, nil
}

// Delete removes name from the store.
func (s *Store) Delete(ctx context.Context, name string) error { return s.inner.Delete(ctx, name) }

// List lists the store's names.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	return s.inner.List(ctx, prefix, continueAt, n)
}

// Close closes the HSM sessions and the store.
func (s *Store) Close() error {
	return errors.Join(s.key.close(), s.inner.Close())
}

// Replace replaces the record of name if its unwrapped value is old (see
// keystore.Replacer): the compare-and-swap is the inner store's, on the
// stored bytes read here.
func (s *replacerStore) Replace(ctx context.Context, name string, old, new []byte) error {
	stored, err := s.inner.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("hsm: replace %q: %w", name, err)
	}
	current := stored
	if IsWrapped(stored) {
		if current, err = s.unwrap(ctx, name, stored); err != nil {
			return fmt.Errorf("hsm: replace %q: %w", name, err)
		}
		defer clear(current)
	}
	if len(current) != len(old) || subtle.ConstantTimeCompare(current, old) != 1 {
		return fmt.Errorf("hsm: replace %q: %w", name, keystore.ErrChanged)
	}
	rec, err := s.record(ctx, name, new)
	if err != nil {
		return err
	}
	return s.inner.(keystore.Replacer).Replace(ctx, name, stored, rec)
}

// Record encoding (docs/hsm.md): the ASCII prefix crypto.HSMRecordPrefix
// "openkes-hsm1:", then padded standard base64 of
//
//	byte 0        algorithm: 1 = AES-256-GCM (CKM_AES_GCM)
//	bytes 1..12   the 96-bit IV, random per record
//	bytes 13..    the ciphertext of the stored record, then the 16-byte tag
//
// The additional data is the prefix, the algorithm byte and the key name,
// so a record copied to another name does not decrypt.
const (
	algAESGCM = 1
	ivSize    = 12
	tagSize   = 16
)

// IsWrapped reports whether a stored value is a wrapped record.
func IsWrapped(v []byte) bool {
	return len(v) >= len(crypto.HSMRecordPrefix) && string(v[:len(crypto.HSMRecordPrefix)]) == crypto.HSMRecordPrefix
}

func additionalData(name string) []byte {
	aad := make([]byte, 0, len(crypto.HSMRecordPrefix)+1+len(name))
	aad = append(aad, crypto.HSMRecordPrefix...)
	aad = append(aad, algAESGCM)
	return append(aad, name...)
}

// wrap returns the wrapped record of value under name.
func (s *Store) wrap(ctx context.Context, name string, value []byte) ([]byte, error) {
	if len(value) > MaxValueSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(value), MaxValueSize)
	}
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	iv, sealed, err := s.key.seal(ctx, iv, additionalData(name), value)
	if err != nil {
		return nil, err
	}
	return EncodeRecord(iv, sealed), nil
}

// EncodeRecord returns the record of an AES-256-GCM ciphertext||tag
// sealed with the 12-byte iv.
func EncodeRecord(iv, sealed []byte) []byte {
	body := make([]byte, 0, 1+len(iv)+len(sealed))
	body = append(body, algAESGCM)
	body = append(body, iv...)
	body = append(body, sealed...)
	p := crypto.HSMRecordPrefix
	rec := make([]byte, len(p)+base64.StdEncoding.EncodedLen(len(body)))
	copy(rec, p)
	base64.StdEncoding.Encode(rec[len(p):], body)
	return rec
}

// errMalformed is the error of a record that has the prefix but no valid
// body.
var errMalformed = errors.New("hsm: malformed wrapped record")

// DecodeRecord splits a wrapped record into IV and ciphertext||tag.
func DecodeRecord(rec []byte) (iv, sealed []byte, err error) {
	if !IsWrapped(rec) {
		return nil, nil, errMalformed
	}
	b64 := rec[len(crypto.HSMRecordPrefix):]
	body := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(body, b64)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not base64", errMalformed)
	}
	body = body[:n]
	// One encoding per record: Go's decoder also takes line breaks and
	// non-zero padding bits, which would give one body several records.
	if base64.StdEncoding.EncodedLen(n) != len(b64) || base64.StdEncoding.EncodeToString(body) != string(b64) {
		return nil, nil, fmt.Errorf("%w: not canonical base64", errMalformed)
	}
	if len(body) < 1+ivSize+tagSize {
		return nil, nil, fmt.Errorf("%w: %d bytes", errMalformed, len(body))
	}
	if body[0] != algAESGCM {
		return nil, nil, fmt.Errorf("%w: unknown algorithm %d", errMalformed, body[0])
	}
	return body[1 : 1+ivSize], body[1+ivSize:], nil
}

// unwrap returns the record wrapped in rec under name.
func (s *Store) unwrap(ctx context.Context, name string, rec []byte) ([]byte, error) {
	iv, sealed, err := DecodeRecord(rec)
	if err != nil {
		return nil, err
	}
	return s.key.open(ctx, iv, additionalData(name), sealed)
}
