package crypto

import (
	"fmt"
	"io"
	"unsafe"
)

// Test-only access to internals.

// EncryptWithRandom is Encrypt with IV and nonce read from random.
func (k SecretKey) EncryptWithRandom(random io.Reader, plaintext, associatedData []byte) ([]byte, error) {
	return k.encrypt(random, plaintext, associatedData)
}

// Bytes returns a copy of the key bytes.
func (k SecretKey) Bytes() []byte { return append([]byte(nil), k.key.bytes()[:]...) }

// Untyped reports whether k comes from a legacy record without algorithm.
func (k SecretKey) Untyped() bool { return k.untyped }

// Bytes returns a copy of the key bytes.
func (h HMACKey) Bytes() []byte { return append([]byte(nil), h.key.bytes()[:]...) }

// LegacyParts parses a legacy JSON or msgpack ciphertext.
func LegacyParts(b []byte) (iv, nonce, sealed []byte, ok bool) {
	var c legacyCiphertext
	switch {
	case len(b) > 0 && b[0] == msgpackFixArray5:
		c, ok = parseMsgpackCiphertext(b)
	case len(b) > 0 && b[0] == '{':
		c, ok = parseJSONCiphertext(b)
	}
	return c.iv, c.nonce, c.sealed, ok
}

// KDF is the HMAC-SHA-256 key derivation of AES256 keys.
func KDF(key, iv []byte) []byte {
	var k [KeySize]byte
	copy(k[:], key)
	out := hmacSHA256KDF(&k, iv)
	return out[:]
}

// AESGCMHardware is aesGCMHardware with features built from flag names.
func AESGCMHardware(goarch string, flags ...string) (bool, error) {
	var f cpuFeatures
	for _, s := range flags {
		switch s {
		case "x86AES":
			f.x86AES = true
		case "x86PCLMULQDQ":
			f.x86PCLMULQDQ = true
		case "armAES":
			f.armAES = true
		case "armPMULL":
			f.armPMULL = true
		case "s390AES":
			f.s390AES = true
		case "s390AESCBC":
			f.s390AESCBC = true
		case "s390AESCTR":
			f.s390AESCTR = true
		case "s390GHASH":
			f.s390GHASH = true
		case "s390AESGCM":
			f.s390AESGCM = true
		default:
			return false, fmt.Errorf("unknown CPU flag %q", s)
		}
	}
	return aesGCMHardware(goarch, f), nil
}

// KeyAddr returns the address of the key bytes of k.
func KeyAddr(k SecretKey) uintptr { return uintptr(unsafe.Pointer(k.key.b)) }

// HMACKeyAddr returns the address of the key bytes of h.
func HMACKeyAddr(h HMACKey) uintptr { return uintptr(unsafe.Pointer(h.key.b)) }

// EncryptWithRandom is Key.Encrypt with IV and nonce read from random.
func (k Key) EncryptWithRandom(random io.Reader, number uint32, plaintext, associatedData []byte) ([]byte, uint32, error) {
	return k.encrypt(random, number, plaintext, associatedData)
}
