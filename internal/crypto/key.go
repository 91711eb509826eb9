package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxRecordSize bounds the stored records [ParseKey] accepts. Real records are
// about 200 bytes; the bound only keeps a corrupt store from costing memory.
const MaxRecordSize = 64 << 10

// ErrInvalidRecord is matched (errors.Is) by every error of [ParseKey] and
// [Key.MarshalBinary]. The server answers 502 "failed to read key" for it.
var ErrInvalidRecord = errors.New("crypto: invalid key record")

// HSMRecordPrefix starts every record that the HSM layer
// (internal/keystore/hsm, docs/hsm.md) wrapped: it is neither base64 nor
// JSON, so wrapped records never pass for §2.1 or §2.2 records.
const HSMRecordPrefix = "openkes-hsm1:"

// ErrHSMWrapped is matched (with [ErrInvalidRecord]) by the error of
// [ParseKey] for a record that an HSM wrapped: the server reading it has no
// hsm section in its configuration, or reads the store around the HSM
// layer.
var ErrHSMWrapped = errors.New("crypto: the key record is wrapped by an HSM; configure the hsm section to read it")

// Key is one stored key record (spec crypto.md §2): a master key, its HMAC
// key, and who created it when.
//
// Keys parsed from legacy JSON records have no HMAC key (HMAC is nil; the
// HMAC API answers kes.ErrNoHMAC for them) and, if the record carried no
// created_at, a zero CreatedAt. Protobuf records without created_at have
// CreatedAt = 1970-01-01T00:00:00Z, as upstream.
type Key struct {
	Secret    SecretKey
	HMAC      *HMACKey  // nil for legacy records
	CreatedAt time.Time // creation time; see above for records without it
	CreatedBy string    // identity of the creator; may be empty

	// ring holds the versions of a rotated key (a ring record); nil for
	// a key that was never rotated. The fields above are then those of
	// its oldest version (version 1).
	ring *ring
}

// GenerateKey returns a new key of type t with fresh master and HMAC keys read
// from random (crypto/rand if nil), created at now (stored in UTC) by
// createdBy.
func GenerateKey(t KeyType, createdBy string, now time.Time, random io.Reader) (Key, error) {
	secret, err := GenerateSecretKey(t, random)
	if err != nil {
		return Key{}, err
	}
	h, err := GenerateHMACKey(random)
	if err != nil {
		secret.Destroy()
		return Key{}, err
	}
	return Key{Secret: secret, HMAC: &h, CreatedAt: now.UTC(), CreatedBy: createdBy}, nil
}

// Destroy zeroes the master key and the HMAC key, which copies of k share:
// they become unusable too.
func (k *Key) Destroy() {
	k.Secret.Destroy()
	if k.HMAC != nil {
		k.HMAC.Destroy()
	}
	if k.ring != nil {
		for i := range k.ring.versions {
			k.ring.versions[i].Key.Destroy()
		}
	}
}

// ParseKey parses a stored record: the ring of a rotated key if stored
// starts with [RingPrefix], legacy JSON if stored is valid JSON, else
// padded standard base64 (line breaks allowed) of the protobuf KeyVersion
// message. Every error matches [ErrInvalidRecord]; messages never contain key
// bytes.
//
// Records are rejected if the master key or HMAC key is not 32 bytes, the key
// type or legacy algorithm is unknown, the hash is not SHA-256, or a protobuf
// record has no HMAC key (upstream crashes on those).
func ParseKey(stored []byte) (Key, error) {
	if len(stored) > MaxRecordSize {
		return Key{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidRecord, len(stored), MaxRecordSize)
	}
	if len(stored) >= len(HSMRecordPrefix) && string(stored[:len(HSMRecordPrefix)]) == HSMRecordPrefix {
		return Key{}, fmt.Errorf("%w: %w", ErrInvalidRecord, ErrHSMWrapped)
	}
	if len(stored) > 0 && stored[0] == RingPrefix[0] && bytes.HasPrefix(stored, []byte(RingPrefix)) {
		return parseRing(stored)
	}
	if json.Valid(stored) {
		return parseLegacyKey(stored)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(stored)))
	defer clear(raw)
	n, err := base64.StdEncoding.Decode(raw, stored)
	if err != nil {
		return Key{}, fmt.Errorf("%w: neither JSON nor base64", ErrInvalidRecord)
	}
	return parseProtoKey(raw[:n])
}

// legacyRecord is every legacy JSON form; other fields ("version", "id") are
// ignored.
type legacyRecord struct {
	Bytes     []byte    `json:"bytes"`
	Algorithm string    `json:"algorithm"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func parseLegacyKey(stored []byte) (Key, error) {
	var r legacyRecord
	err := json.Unmarshal(stored, &r)
	defer clear(r.Bytes)
	if err != nil {
		// Not err's text: a type error quotes the offending JSON number.
		return Key{}, fmt.Errorf("%w: legacy JSON: malformed field", ErrInvalidRecord)
	}
	if len(r.Bytes) != KeySize {
		return Key{}, fmt.Errorf("%w: legacy JSON: key has %d bytes", ErrInvalidRecord, len(r.Bytes))
	}
	t, untyped := AES256, r.Algorithm == ""
	if !untyped {
		if t, err = ParseCipher(r.Algorithm); err != nil {
			return Key{}, fmt.Errorf("%w: legacy JSON: unknown algorithm %q", ErrInvalidRecord, r.Algorithm)
		}
	}
	secret, _ := NewSecretKey(t, r.Bytes)
	secret.untyped = untyped
	return Key{Secret: secret, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}, nil
}

// Protobuf field numbers of KeyVersion and its messages (spec crypto.md §2.1).
const (
	fieldVersionKey       protowire.Number = 1
	fieldVersionHMAC      protowire.Number = 2
	fieldVersionCreatedAt protowire.Number = 3
	fieldVersionCreatedBy protowire.Number = 4

	fieldKeyBytes protowire.Number = 1 // SecretKey.Key and HMACKey.Key
	fieldKeyType  protowire.Number = 2 // SecretKey.Type and HMACKey.Hash

	fieldSeconds protowire.Number = 1
	fieldNanos   protowire.Number = 2

	hashSHA256 = 1
)

// protoKey is a decoded SecretKey or HMACKey message.
type protoKey struct {
	key []byte
	typ uint32
}

func parseProtoKey(b []byte) (Key, error) {
	var (
		secret, mac protoKey
		hasMAC      bool
		seconds     int64
		nanos       int32
		createdBy   string
	)
	// Like proto.Unmarshal: fields in any order, unknown fields and fields of
	// an unexpected wire type skipped, a repeated message merged, the last
	// scalar wins.
	err := walkFields(b, func(num protowire.Number, v []byte) bool {
		switch num {
		case fieldVersionKey:
			return parseProtoSubKey(v, &secret)
		case fieldVersionHMAC:
			hasMAC = true
			return parseProtoSubKey(v, &mac)
		case fieldVersionCreatedAt:
			return parseTimestamp(v, &seconds, &nanos)
		case fieldVersionCreatedBy:
			createdBy = string(v)
			return utf8.ValidString(createdBy)
		}
		return true
	}, nil)
	if err != nil {
		return Key{}, fmt.Errorf("%w: malformed protobuf", ErrInvalidRecord)
	}

	switch {
	case len(secret.key) != KeySize:
		return Key{}, fmt.Errorf("%w: key has %d bytes", ErrInvalidRecord, len(secret.key))
	case !KeyType(secret.typ).valid():
		return Key{}, fmt.Errorf("%w: unknown key type %d", ErrInvalidRecord, secret.typ)
	case !hasMAC:
		return Key{}, fmt.Errorf("%w: no HMAC key", ErrInvalidRecord)
	case len(mac.key) != KeySize:
		return Key{}, fmt.Errorf("%w: HMAC key has %d bytes", ErrInvalidRecord, len(mac.key))
	case mac.typ != hashSHA256:
		return Key{}, fmt.Errorf("%w: unknown HMAC hash %d", ErrInvalidRecord, mac.typ)
	}
	k := Key{
		CreatedAt: time.Unix(seconds, int64(nanos)).UTC(),
		CreatedBy: createdBy,
	}
	k.Secret, _ = NewSecretKey(KeyType(secret.typ), secret.key)
	h, _ := NewHMACKey(mac.key)
	k.HMAC = &h
	return k, nil
}

func parseProtoSubKey(b []byte, k *protoKey) bool {
	return walkFields(b, func(num protowire.Number, v []byte) bool {
		if num == fieldKeyBytes {
			k.key = v
		}
		return true
	}, func(num protowire.Number, v uint64) {
		if num == fieldKeyType {
			k.typ = uint32(v) // proto3 uint32 keeps the low 32 bits
		}
	}) == nil
}

func parseTimestamp(b []byte, seconds *int64, nanos *int32) bool {
	return walkFields(b, nil, func(num protowire.Number, v uint64) {
		switch num {
		case fieldSeconds:
			*seconds = int64(v)
		case fieldNanos:
			*nanos = int32(v)
		}
	}) == nil
}

// walkFields calls onBytes for each length-delimited field and onVarint for
// each varint field of the protobuf message b and skips all other fields. A
// nil callback skips its fields. It stops with an error if b is malformed or
// onBytes returns false.
func walkFields(b []byte, onBytes func(protowire.Number, []byte) bool, onVarint func(protowire.Number, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && onBytes != nil:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if !onBytes(num, v) {
				return ErrInvalidRecord
			}
			b = b[n:]
		case typ == protowire.VarintType && onVarint != nil:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			onVarint(num, v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return nil
}

// MarshalBinary returns the current stored form of k: padded standard base64,
// without line breaks, of the protobuf KeyVersion message with fields in
// number order and zero values omitted (spec crypto.md §2.1). It fails
// (matching [ErrInvalidRecord]) if k has no HMAC key, since upstream cannot
// read such a record, if the master key is unusable, if CreatedBy is not
// valid UTF-8, or if k is a rotated key (its record is made by
// [RotateRecord]).
func (k Key) MarshalBinary() ([]byte, error) {
	switch {
	case k.ring != nil:
		return nil, fmt.Errorf("%w: a rotated key is stored as a ring (RotateRecord)", ErrInvalidRecord)
	case !k.Secret.typ.valid():
		return nil, fmt.Errorf("%w: %w", ErrInvalidRecord, ErrKeyType)
	case k.HMAC == nil:
		return nil, fmt.Errorf("%w: no HMAC key", ErrInvalidRecord)
	case !utf8.ValidString(k.CreatedBy):
		return nil, fmt.Errorf("%w: created_by is not UTF-8", ErrInvalidRecord)
	}
	var ts []byte
	var tsBuf [24]byte
	ts = tsBuf[:0]
	if s := k.CreatedAt.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, fieldSeconds, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if ns := int32(k.CreatedAt.Nanosecond()); ns != 0 {
		ts = protowire.AppendTag(ts, fieldNanos, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(int64(ns)))
	}

	msg := make([]byte, 0, 2*(4+KeySize+2)+2+len(ts)+3+len(k.CreatedBy))
	defer clear(msg)
	msg = appendProtoKey(msg, fieldVersionKey, k.Secret.key.bytes()[:], uint32(k.Secret.typ))
	msg = appendProtoKey(msg, fieldVersionHMAC, k.HMAC.key.bytes()[:], hashSHA256)
	msg = protowire.AppendTag(msg, fieldVersionCreatedAt, protowire.BytesType)
	msg = protowire.AppendBytes(msg, ts)
	if k.CreatedBy != "" {
		msg = protowire.AppendTag(msg, fieldVersionCreatedBy, protowire.BytesType)
		msg = protowire.AppendString(msg, k.CreatedBy)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(msg)))
	base64.StdEncoding.Encode(out, msg)
	return out, nil
}

// appendProtoKey appends a SecretKey or HMACKey message as field num.
func appendProtoKey(b []byte, num protowire.Number, key []byte, typ uint32) []byte {
	size := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeVarint(uint64(typ))
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fieldKeyBytes, protowire.BytesType)
	b = protowire.AppendBytes(b, key)
	b = protowire.AppendTag(b, fieldKeyType, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(typ))
}
