package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"log/slog"
)

// HMACKey is the key of the HMAC API (spec crypto.md §7): 32 bytes used with
// HMAC-SHA-256, independent of the master key.
//
// The key bytes are kept in locked memory outside the Go heap (see
// [LockedMemory]); copies share them, and they are zeroed once no copy is
// reachable. The zero value is a valid all-zero key and must not be used
// for anything but tests. Methods are safe for concurrent use. String and
// LogValue never print the key bytes.
type HMACKey struct {
	key *keyBytes
}

// NewHMACKey returns an HMAC key with a copy of key, which must be [KeySize]
// bytes long ([ErrKeySize]).
func NewHMACKey(key []byte) (HMACKey, error) {
	if len(key) != KeySize {
		return HMACKey{}, ErrKeySize
	}
	h := HMACKey{key: newKeyBytes()}
	copy(h.key.b[:], key)
	return h, nil
}

// GenerateHMACKey returns an HMAC key with bytes read from random, or from
// crypto/rand if random is nil.
func GenerateHMACKey(random io.Reader) (HMACKey, error) {
	h := HMACKey{key: newKeyBytes()}
	if err := readRandom(random, h.key.b[:]); err != nil {
		return HMACKey{}, err
	}
	return h, nil
}

// Sum returns HMAC-SHA-256(key, message), 32 bytes in a new slice.
func (h HMACKey) Sum(message []byte) []byte {
	// crypto/hmac keeps the padded key in its hash states on the heap.
	mac := hmac.New(sha256.New, h.key.bytes()[:])
	mac.Write(message)
	return mac.Sum(make([]byte, 0, sha256.Size))
}

// Equal reports in constant time whether h and o hold the same key.
func (h HMACKey) Equal(o HMACKey) bool {
	return subtle.ConstantTimeCompare(h.key.bytes()[:], o.key.bytes()[:]) == 1
}

// Destroy zeroes the key bytes, which copies of h share.
func (h *HMACKey) Destroy() { h.key.destroy() }

// String returns a fixed text, never the key bytes.
func (h HMACKey) String() string { return "HMACKey(SHA256)" }

// GoString is String, so that %#v does not print the key bytes.
func (h HMACKey) GoString() string { return h.String() }

// LogValue implements slog.LogValuer; it never logs the key bytes.
func (h HMACKey) LogValue() slog.Value { return slog.StringValue(h.String()) }
