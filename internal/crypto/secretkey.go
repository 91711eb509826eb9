package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the raw ciphertext format (spec crypto.md §3).
const (
	// KeySize is the size of master keys and HMAC keys in bytes.
	KeySize = 32
	// Overhead is the number of bytes [SecretKey.Encrypt] adds to a
	// plaintext: the 16-byte tag, the 16-byte IV and the 12-byte nonce.
	Overhead = tagSize + ivSize + nonceSize

	tagSize   = 16
	ivSize    = 16
	nonceSize = 12
)

var (
	// ErrKeySize is returned for key material that is not [KeySize] bytes.
	ErrKeySize = errors.New("crypto: key is not 32 bytes")
	// ErrKeyType is returned for a [KeyType] other than [AES256] and
	// [ChaCha20], including the zero value of [SecretKey].
	ErrKeyType = errors.New("crypto: invalid key type")
	// ErrFIPS is returned when a ChaCha20 key is used in FIPS 140 mode, where
	// only AES256 keys are available.
	ErrFIPS = errors.New("crypto: ChaCha20 is not available in FIPS 140 mode")
	// ErrDecrypt is returned when a ciphertext does not decrypt: malformed,
	// another key or another context. It says nothing about which, on
	// purpose; the API answers ErrDecrypt for it.
	ErrDecrypt = errors.New("crypto: decryption failed")
)

// SecretKey is a master key: 32 bytes and a [KeyType].
//
// A SecretKey is a small value. Its key bytes are kept in locked memory
// outside the Go heap (see [LockedMemory]); copies share them, and they are
// zeroed once no copy is reachable. The zero value is not usable: its
// methods return [ErrKeyType]. Methods are safe for concurrent use. The key
// bytes never leave the value: String and LogValue print only the type.
type SecretKey struct {
	key *keyBytes
	typ KeyType

	// untyped is set for legacy records stored without an algorithm. Their
	// type is AES256, but ciphertexts in a legacy format whose tag names
	// ChaCha20 are also tried with ChaCha20 (see [SecretKey.Decrypt]).
	untyped bool
}

// NewSecretKey returns a master key of type t with a copy of key, which must
// be [KeySize] bytes long ([ErrKeySize]). t must be [AES256] or [ChaCha20]
// ([ErrKeyType]).
func NewSecretKey(t KeyType, key []byte) (SecretKey, error) {
	if !t.valid() {
		return SecretKey{}, ErrKeyType
	}
	if len(key) != KeySize {
		return SecretKey{}, ErrKeySize
	}
	k := SecretKey{key: newKeyBytes(), typ: t}
	copy(k.key.b[:], key)
	return k, nil
}

// GenerateSecretKey returns a master key of type t with bytes read from
// random, or from crypto/rand if random is nil.
func GenerateSecretKey(t KeyType, random io.Reader) (SecretKey, error) {
	if !t.valid() {
		return SecretKey{}, ErrKeyType
	}
	k := SecretKey{key: newKeyBytes(), typ: t}
	if err := readRandom(random, k.key.b[:]); err != nil {
		return SecretKey{}, err
	}
	return k, nil
}

// Type returns the type of k.
func (k SecretKey) Type() KeyType { return k.typ }

// Equal reports in constant time whether k and o hold the same key bytes and
// type, and both or neither come from a legacy record without algorithm.
func (k SecretKey) Equal(o SecretKey) bool {
	return subtle.ConstantTimeCompare(k.key.bytes()[:], o.key.bytes()[:]) == 1 && k.typ == o.typ && k.untyped == o.untyped
}

// Destroy zeroes the key bytes, which copies of k share: k and its copies
// are unusable afterwards (their methods return [ErrKeyType]).
func (k *SecretKey) Destroy() {
	k.key.destroy()
	*k = SecretKey{}
}

// String returns the type of k, never its bytes.
func (k SecretKey) String() string { return "SecretKey(" + k.typ.String() + ")" }

// GoString is String, so that %#v does not print the key bytes.
func (k SecretKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer; it logs only the type.
func (k SecretKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Encrypt seals plaintext with associatedData (the request context; nil and
// empty are equivalent) and returns the raw ciphertext C‖TAG‖IV‖NONCE of
// len(plaintext)+[Overhead] bytes (spec crypto.md §3). IV and nonce come from
// crypto/rand. The result is a new slice; the inputs are not modified.
//
// Encrypt returns [ErrKeyType] for the zero SecretKey and [ErrFIPS] for a
// ChaCha20 key in FIPS 140 mode.
func (k SecretKey) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return k.encrypt(nil, plaintext, associatedData)
}

// encrypt is Encrypt with IV and nonce read from random (crypto/rand if nil).
func (k SecretKey) encrypt(random io.Reader, plaintext, associatedData []byte) ([]byte, error) {
	if err := k.usable(k.typ); err != nil {
		return nil, err
	}
	// One buffer: the AEAD output fills the front, IV and nonce the tail.
	out := make([]byte, len(plaintext)+Overhead)
	sealed := len(plaintext) + tagSize
	if err := readRandom(random, out[sealed:]); err != nil {
		return nil, err
	}
	iv, nonce := out[sealed:sealed+ivSize], out[sealed+ivSize:]
	aead, err := newAEAD(k.typ, k.key.b, iv)
	if err != nil {
		return nil, err
	}
	aead.Seal(out[:0], nonce, plaintext, associatedData)
	return out, nil
}

// Decrypt opens a ciphertext made by k with associatedData and returns the
// plaintext in a new slice. It accepts the raw format and the legacy JSON and
// msgpack formats (spec crypto.md §4–5); a ciphertext starting like a legacy
// format that does not parse as one is decrypted as raw.
//
// Any failure (too short, malformed, wrong key, wrong associated data) returns
// [ErrDecrypt]. The only other errors are [ErrKeyType] for the zero
// SecretKey and [ErrFIPS] for a ChaCha20 key in FIPS 140 mode.
//
// Legacy ciphertexts carry an algorithm tag. As upstream KES, Decrypt ignores
// it and uses the key's own type, except for keys read from a legacy record
// that named no algorithm: servers before 2024 chose the algorithm of such
// keys per ciphertext, so a tag that names the other algorithm is tried too.
func (k SecretKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if err := k.usable(k.typ); err != nil {
		return nil, err
	}
	if len(ciphertext) > 0 {
		var (
			c  legacyCiphertext
			ok bool
		)
		switch ciphertext[0] {
		case msgpackFixArray5:
			c, ok = parseMsgpackCiphertext(ciphertext)
		case '{':
			c, ok = parseJSONCiphertext(ciphertext)
		}
		if ok {
			return k.openLegacy(c, associatedData)
		}
	}
	if len(ciphertext) <= ivSize+nonceSize {
		return nil, ErrDecrypt
	}
	sealed := len(ciphertext) - ivSize - nonceSize
	iv := ciphertext[sealed : sealed+ivSize]
	nonce := ciphertext[sealed+ivSize:]
	return k.open(k.typ, iv, nonce, ciphertext[:sealed], associatedData)
}

func (k SecretKey) openLegacy(c legacyCiphertext, associatedData []byte) ([]byte, error) {
	plaintext, err := k.open(k.typ, c.iv, c.nonce, c.sealed, associatedData)
	if err == nil || !k.untyped || c.typ == k.typ || k.usable(c.typ) != nil {
		return plaintext, err
	}
	return k.open(c.typ, c.iv, c.nonce, c.sealed, associatedData)
}

// open decrypts sealed (C‖TAG) with the one-time key of type t derived from
// iv. Every failure is ErrDecrypt.
func (k SecretKey) open(t KeyType, iv, nonce, sealed, associatedData []byte) ([]byte, error) {
	if len(iv) != ivSize || len(nonce) != nonceSize || len(sealed) < tagSize {
		return nil, ErrDecrypt
	}
	aead, err := newAEAD(t, k.key.b, iv)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := aead.Open(make([]byte, 0, len(sealed)-tagSize), nonce, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

func (k SecretKey) usable(t KeyType) error {
	if !t.valid() || k.key == nil || k.key.destroyed.Load() {
		return ErrKeyType
	}
	if t == ChaCha20 && fips140.Enabled() {
		return ErrFIPS
	}
	return nil
}

// newAEAD returns the AEAD keyed with the one-time key that t derives from the
// master key and the 16-byte iv (spec crypto.md §3 step 2).
func newAEAD(t KeyType, key *[KeySize]byte, iv []byte) (cipher.AEAD, error) {
	var derived [KeySize]byte
	defer clear(derived[:])

	switch t {
	case AES256:
		derived = hmacSHA256KDF(key, iv)
		block, err := aes.NewCipher(derived[:])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	case ChaCha20:
		out, err := chacha20.HChaCha20(key[:], iv)
		if err != nil {
			return nil, err
		}
		copy(derived[:], out)
		clear(out)
		return chacha20poly1305.New(derived[:])
	}
	return nil, ErrKeyType
}

// hmacSHA256KDF returns HMAC-SHA-256(key, msg) for a msg of at most 32 bytes.
// It computes HMAC on stack buffers because crypto/hmac allocates two hash
// states per call and this runs on every encrypt and decrypt. In FIPS 140 mode
// it uses crypto/hmac, the validated implementation.
func hmacSHA256KDF(key *[KeySize]byte, msg []byte) [sha256.Size]byte {
	if fips140.Enabled() || len(msg) > sha256.Size {
		return hmacSHA256(key, msg)
	}
	var buf [sha256.BlockSize + sha256.Size]byte
	defer clear(buf[:])
	for i := range sha256.BlockSize {
		buf[i] = 0x36
	}
	subtle.XORBytes(buf[:KeySize], buf[:KeySize], key[:])
	n := copy(buf[sha256.BlockSize:], msg)
	inner := sha256.Sum256(buf[:sha256.BlockSize+n])

	for i := range sha256.BlockSize {
		buf[i] = 0x5c
	}
	subtle.XORBytes(buf[:KeySize], buf[:KeySize], key[:])
	copy(buf[sha256.BlockSize:], inner[:])
	clear(inner[:])
	return sha256.Sum256(buf[:])
}

// hmacSHA256 is hmacSHA256KDF with crypto/hmac. It copies its inputs so
// that they do not escape to the heap in the common path of its caller.
func hmacSHA256(key *[KeySize]byte, msg []byte) (sum [sha256.Size]byte) {
	k, m := bytes.Clone(key[:]), bytes.Clone(msg)
	defer clear(k)
	h := hmac.New(sha256.New, k)
	h.Write(m)
	copy(sum[:], h.Sum(nil))
	return sum
}

// readRandom fills b from random, or from crypto/rand if random is nil.
func readRandom(random io.Reader, b []byte) error {
	if random == nil {
		rand.Read(b) // never fails: the runtime aborts if the OS has no randomness
		return nil
	}
	_, err := io.ReadFull(random, b)
	return err
}
