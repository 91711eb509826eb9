package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Key versions (OpenKES extension, docs/key-rotation.md).
//
// A key that was never rotated is one upstream record (§2.1 or §2.2) and
// version 1 of itself. Rotating it stores a ring record instead:
//
//	"kesring1:" || base64std(Ring)
//
//	Ring:        field 1 varint  current version number
//	             field 2 bytes   RingVersion, repeated, ascending numbers
//	RingVersion: field 1 varint  version number (>= 1)
//	             field 2 bytes   the version's record, an upstream record
//	                             (§2.1 or §2.2 text) kept verbatim
//	             field 3 varint  1 if the version is disabled for
//	                             encryption (omitted when not)
//
// The prefix holds ':', which is neither the start of a JSON value nor in
// the base64 alphabet, so no upstream reader takes a ring for a record of
// its own: upstream answers 502 for a rotated key instead of using one of
// its versions. Version 1 of a rotated key keeps the record the key had
// before, byte for byte, so its legacy form (and missing HMAC key) is kept.

// RingPrefix starts every stored record of a rotated key.
const RingPrefix = "kesring1:"

// MaxVersions bounds the versions of a key.
const MaxVersions = 256

// Errors of the version API.
var (
	// ErrNoVersion is returned for a version number the key does not have.
	ErrNoVersion = errors.New("crypto: key version does not exist")
	// ErrVersionDisabled is returned when a disabled version is asked to
	// encrypt.
	ErrVersionDisabled = errors.New("crypto: key version is disabled")
	// ErrCurrentVersion is returned when the current version is to be
	// disabled.
	ErrCurrentVersion = errors.New("crypto: the current key version cannot be disabled")
	// ErrTooManyVersions is returned when a rotation would give a key more
	// than MaxVersions versions.
	ErrTooManyVersions = errors.New("crypto: key has too many versions")
)

// Protobuf field numbers of Ring and RingVersion.
const (
	fieldRingCurrent  protowire.Number = 1
	fieldRingVersion  protowire.Number = 2
	fieldEntryNumber  protowire.Number = 1
	fieldEntryRecord  protowire.Number = 2
	fieldEntryDisable protowire.Number = 3
)

// ring is the parsed ring of a rotated [Key].
type ring struct {
	versions []Version // ascending Number
	current  int       // index of the current version
}

// Version is one version of a key: its number, its record and whether it
// is disabled for encryption (it still decrypts).
type Version struct {
	Number   uint32
	Key      Key // never a ring
	Disabled bool
}

// ringEntry is a RingVersion message; record aliases the decoded ring.
type ringEntry struct {
	number   uint32
	record   []byte
	disabled bool
}

// decodeRing decodes a ring record (with its prefix) into its current
// version number and entries, checking the envelope's rules: at most
// MaxVersions entries with ascending numbers >= 1, the current one among
// them and not disabled. Entry records are not parsed. The caller clears
// buf, which the entries alias.
func decodeRing(stored []byte) (current uint32, entries []ringEntry, buf []byte, err error) {
	text := stored[len(RingPrefix):]
	buf = make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(buf, text)
	if err != nil {
		return 0, nil, buf, fmt.Errorf("%w: ring: not base64", ErrInvalidRecord)
	}
	var bad bool
	err = walkFields(buf[:n], func(num protowire.Number, v []byte) bool {
		if num != fieldRingVersion {
			return true
		}
		var e ringEntry
		if walkFields(v, func(num protowire.Number, v []byte) bool {
			if num == fieldEntryRecord {
				e.record = v
			}
			return true
		}, func(num protowire.Number, v uint64) {
			switch num {
			case fieldEntryNumber:
				if v > 1<<32-1 {
					bad = true
				}
				e.number = uint32(v)
			case fieldEntryDisable:
				e.disabled = v != 0
			}
		}) != nil {
			return false
		}
		entries = append(entries, e)
		return len(entries) <= MaxVersions
	}, func(num protowire.Number, v uint64) {
		if num == fieldRingCurrent {
			if v > 1<<32-1 {
				bad = true
			}
			current = uint32(v)
		}
	})
	if err != nil || bad {
		return 0, nil, buf, fmt.Errorf("%w: ring: malformed protobuf", ErrInvalidRecord)
	}
	if len(entries) == 0 {
		return 0, nil, buf, fmt.Errorf("%w: ring: no versions", ErrInvalidRecord)
	}
	found := false
	for i, e := range entries {
		if e.number == 0 || (i > 0 && e.number <= entries[i-1].number) {
			return 0, nil, buf, fmt.Errorf("%w: ring: version numbers not ascending", ErrInvalidRecord)
		}
		if e.number == current {
			if e.disabled {
				return 0, nil, buf, fmt.Errorf("%w: ring: current version %d is disabled", ErrInvalidRecord, current)
			}
			found = true
		}
	}
	if !found {
		return 0, nil, buf, fmt.Errorf("%w: ring: current version %d missing", ErrInvalidRecord, current)
	}
	return current, entries, buf, nil
}

// encodeRing returns the ring record of current and entries.
func encodeRing(current uint32, entries []ringEntry) []byte {
	var msg []byte
	defer func() { clear(msg) }()
	msg = protowire.AppendTag(msg, fieldRingCurrent, protowire.VarintType)
	msg = protowire.AppendVarint(msg, uint64(current))
	var e []byte
	for _, en := range entries {
		e = e[:0]
		e = protowire.AppendTag(e, fieldEntryNumber, protowire.VarintType)
		e = protowire.AppendVarint(e, uint64(en.number))
		e = protowire.AppendTag(e, fieldEntryRecord, protowire.BytesType)
		e = protowire.AppendBytes(e, en.record)
		if en.disabled {
			e = protowire.AppendTag(e, fieldEntryDisable, protowire.VarintType)
			e = protowire.AppendVarint(e, 1)
		}
		msg = protowire.AppendTag(msg, fieldRingVersion, protowire.BytesType)
		msg = protowire.AppendBytes(msg, e)
	}
	clear(e)
	out := make([]byte, len(RingPrefix)+base64.StdEncoding.EncodedLen(len(msg)))
	copy(out, RingPrefix)
	base64.StdEncoding.Encode(out[len(RingPrefix):], msg)
	return out
}

// parseRing parses a ring record into a Key whose fields are those of
// version 1 (or the lowest version kept) and whose ring holds every version.
func parseRing(stored []byte) (Key, error) {
	current, entries, buf, err := decodeRing(stored)
	defer clear(buf)
	if err != nil {
		return Key{}, err
	}
	r := &ring{versions: make([]Version, 0, len(entries))}
	for _, e := range entries {
		if bytes.HasPrefix(e.record, []byte(RingPrefix)) {
			return Key{}, fmt.Errorf("%w: ring: version %d is a ring", ErrInvalidRecord, e.number)
		}
		k, err := ParseKey(e.record)
		if err != nil {
			return Key{}, fmt.Errorf("version %d: %w", e.number, err)
		}
		if e.number == current {
			r.current = len(r.versions)
		}
		r.versions = append(r.versions, Version{Number: e.number, Key: k, Disabled: e.disabled})
	}
	k := r.versions[0].Key
	k.ring = r
	return k, nil
}

// readRecord returns the current version number and entries of stored,
// an upstream record (then version 1 of itself) or a ring.
func readRecord(stored []byte) (uint32, []ringEntry, []byte, error) {
	if bytes.HasPrefix(stored, []byte(RingPrefix)) {
		return decodeRing(stored)
	}
	k, err := ParseKey(stored)
	if err != nil {
		return 0, nil, nil, err
	}
	k.Destroy()
	return 1, []ringEntry{{number: 1, record: stored}}, nil, nil
}

// RotateRecord returns the record of the key stored as stored with a new
// version appended and made current, and the new version's number. The new
// version has a fresh master key of the current version's type read from
// random (crypto/rand if nil), the HMAC key of the oldest version (a fresh
// one if that has none, as legacy records), and is created at now by
// createdBy. Records of existing versions are copied byte for byte.
//
// It returns an error matching [ErrInvalidRecord] if stored does not parse
// and [ErrTooManyVersions] if the key has MaxVersions versions or its
// record would grow past MaxRecordSize.
func RotateRecord(stored []byte, createdBy string, now time.Time, random io.Reader) ([]byte, uint32, error) {
	current, entries, buf, err := readRecord(stored)
	defer clear(buf)
	if err != nil {
		return nil, 0, err
	}
	if len(entries) >= MaxVersions {
		return nil, 0, ErrTooManyVersions
	}
	cur, err := ParseKey(entryOf(entries, current).record)
	if err != nil {
		return nil, 0, err
	}
	defer cur.Destroy()
	oldest, err := ParseKey(entries[0].record)
	if err != nil {
		return nil, 0, err
	}
	defer oldest.Destroy()

	secret, err := GenerateSecretKey(cur.Secret.Type(), random)
	if err != nil {
		return nil, 0, err
	}
	next := Key{Secret: secret, HMAC: oldest.HMAC, CreatedAt: now.UTC(), CreatedBy: createdBy}
	if next.HMAC == nil {
		h, err := GenerateHMACKey(random)
		if err != nil {
			secret.Destroy()
			return nil, 0, err
		}
		next.HMAC = &h
		defer h.Destroy()
	}
	record, err := next.MarshalBinary()
	secret.Destroy()
	if err != nil {
		return nil, 0, err
	}
	defer clear(record)
	number := entries[len(entries)-1].number + 1
	if number == 0 { // wrapped: cannot happen below MaxVersions from 1
		return nil, 0, ErrTooManyVersions
	}
	entries = append(entries, ringEntry{number: number, record: record})
	out := encodeRing(number, entries)
	if len(out) > MaxRecordSize {
		clear(out)
		return nil, 0, ErrTooManyVersions
	}
	return out, number, nil
}

// SetDisabledRecord returns the record of the key stored as stored with
// version number disabled (or enabled) for encryption, and whether it
// differs from stored. Records of the versions are copied byte for byte.
//
// It returns [ErrNoVersion] if the key has no such version and
// [ErrCurrentVersion] if it is the current one and disabled is true; a key
// that was never rotated has only its current version, so it never changes.
func SetDisabledRecord(stored []byte, number uint32, disabled bool) ([]byte, bool, error) {
	current, entries, buf, err := readRecord(stored)
	defer clear(buf)
	if err != nil {
		return nil, false, err
	}
	e := entryOf(entries, number)
	switch {
	case e == nil:
		return nil, false, ErrNoVersion
	case disabled && number == current:
		return nil, false, ErrCurrentVersion
	case e.disabled == disabled:
		return stored, false, nil
	}
	e.disabled = disabled
	return encodeRing(current, entries), true, nil
}

func entryOf(entries []ringEntry, number uint32) *ringEntry {
	for i := range entries {
		if entries[i].number == number {
			return &entries[i]
		}
	}
	return nil
}

// VersionRecords returns the stored record of each version of the key
// stored as stored, by version number: a ring's records as kept, or stored
// itself as version 1 of a key never rotated. Each is an upstream record
// that [ParseKey] reads and upstream KES too (a way back to upstream for a
// rotated key: store its version 1 record).
func VersionRecords(stored []byte) (map[uint32][]byte, error) {
	_, entries, buf, err := readRecord(stored)
	defer clear(buf)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]byte, len(entries))
	for _, e := range entries {
		out[e.number] = append([]byte(nil), e.record...)
	}
	return out, nil
}
