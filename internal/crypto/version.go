package crypto

import (
	"encoding/binary"
	"io"
	"time"
)

// Versioned ciphertexts (OpenKES extension, docs/key-rotation.md).
//
// Version 1 of a key encrypts in upstream's raw format (§3), so a key that
// was never rotated produces exactly upstream's ciphertexts. Versions >= 2
// produce
//
//	'K' 'V' || number (4 bytes, big endian, >= 2) || C || TAG || IV || NONCE
//
// where C‖TAG‖IV‖NONCE is the raw format made with the version's master key
// and the associated data header‖context (the 6-byte header first): the
// header is authenticated, so a ciphertext of one version never opens as
// another. A raw ciphertext may start with the same two bytes by chance
// (1 in 65536): a ciphertext that looks versioned but does not open with
// the version it names is decrypted as version 1's raw or legacy
// ciphertext.

const (
	versionMagic0 = 'K'
	versionMagic1 = 'V'
	// VersionHeaderSize is the size of the header of a versioned
	// ciphertext.
	VersionHeaderSize = 6
)

// CiphertextVersion returns the version number a ciphertext names: its
// header's for a ciphertext in the versioned format and 1 for any other.
// It does not authenticate anything; the number is what decryption tries
// first.
func CiphertextVersion(ciphertext []byte) uint32 {
	if v, ok := versionHeader(ciphertext); ok {
		return v
	}
	return 1
}

// versionHeader returns the number of a ciphertext that looks versioned:
// the magic, a number >= 2, and room for the raw format after the header.
func versionHeader(c []byte) (uint32, bool) {
	if len(c) < VersionHeaderSize+Overhead || c[0] != versionMagic0 || c[1] != versionMagic1 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(c[2:VersionHeaderSize])
	return v, v >= 2
}

// encryptVersioned is encrypt in the versioned format of version number.
func (k SecretKey) encryptVersioned(random io.Reader, number uint32, plaintext, associatedData []byte) ([]byte, error) {
	if err := k.usable(k.typ); err != nil {
		return nil, err
	}
	out := make([]byte, VersionHeaderSize+len(plaintext)+Overhead)
	out[0], out[1] = versionMagic0, versionMagic1
	binary.BigEndian.PutUint32(out[2:VersionHeaderSize], number)
	sealed := VersionHeaderSize + len(plaintext) + tagSize
	if err := readRandom(random, out[sealed:]); err != nil {
		return nil, err
	}
	iv, nonce := out[sealed:sealed+ivSize], out[sealed+ivSize:]
	aead, err := newAEAD(k.typ, k.key.b, iv)
	if err != nil {
		return nil, err
	}
	aad := versionAAD(out[:VersionHeaderSize], associatedData)
	aead.Seal(out[:VersionHeaderSize], nonce, plaintext, aad)
	return out, nil
}

// decryptVersioned opens a versioned ciphertext c with k. Every failure is
// ErrDecrypt.
func (k SecretKey) decryptVersioned(c, associatedData []byte) ([]byte, error) {
	if err := k.usable(k.typ); err != nil {
		return nil, err
	}
	body := c[VersionHeaderSize:]
	sealed := len(body) - ivSize - nonceSize
	iv, nonce := body[sealed:sealed+ivSize], body[sealed+ivSize:]
	return k.open(k.typ, iv, nonce, body[:sealed], versionAAD(c[:VersionHeaderSize], associatedData))
}

func versionAAD(header, associatedData []byte) []byte {
	aad := make([]byte, 0, VersionHeaderSize+len(associatedData))
	return append(append(aad, header...), associatedData...)
}

// Rotated reports whether k is stored as a ring: it was rotated at least
// once.
func (k Key) Rotated() bool { return k.ring != nil }

// Current returns the number of the version that encrypts by default: 1
// for a key that was never rotated.
func (k Key) Current() uint32 {
	if k.ring == nil {
		return 1
	}
	return k.ring.versions[k.ring.current].Number
}

// Latest returns the highest version number of k.
func (k Key) Latest() uint32 {
	if k.ring == nil {
		return 1
	}
	return k.ring.versions[len(k.ring.versions)-1].Number
}

// Versions returns the versions of k, ascending; a key that was never
// rotated is its own version 1. The slice is new; its keys are shared
// with k and must not be destroyed.
func (k Key) Versions() []Version {
	if k.ring == nil {
		v := k
		return []Version{{Number: 1, Key: v}}
	}
	return append([]Version(nil), k.ring.versions...)
}

// version returns version number of k.
func (k Key) version(number uint32) (Version, bool) {
	if k.ring == nil {
		if number != 1 {
			return Version{}, false
		}
		return Version{Number: 1, Key: k}, true
	}
	for _, v := range k.ring.versions {
		if v.Number == number {
			return v, true
		}
	}
	return Version{}, false
}

// Encrypt encrypts plaintext with associatedData under version number of k
// (0: the current version) and returns the ciphertext and the number of
// the version used. Version 1 produces upstream's raw format, higher
// versions the versioned format. It returns [ErrNoVersion] for a number k
// does not have and [ErrVersionDisabled] for a disabled version, and the
// errors of [SecretKey.Encrypt].
func (k Key) Encrypt(number uint32, plaintext, associatedData []byte) ([]byte, uint32, error) {
	return k.encrypt(nil, number, plaintext, associatedData)
}

func (k Key) encrypt(random io.Reader, number uint32, plaintext, associatedData []byte) ([]byte, uint32, error) {
	if k.ring == nil && number <= 1 {
		c, err := k.Secret.encrypt(random, plaintext, associatedData)
		return c, 1, err
	}
	if number == 0 {
		number = k.Current()
	}
	v, ok := k.version(number)
	switch {
	case !ok:
		return nil, 0, ErrNoVersion
	case v.Disabled:
		return nil, 0, ErrVersionDisabled
	case number == 1:
		c, err := v.Key.Secret.encrypt(random, plaintext, associatedData)
		return c, 1, err
	}
	c, err := v.Key.Secret.encryptVersioned(random, number, plaintext, associatedData)
	return c, number, err
}

// Decrypt decrypts ciphertext with associatedData and returns the
// plaintext and the number of the version that opened it. With number 0
// the version is the one the ciphertext names (see [CiphertextVersion]),
// and a ciphertext that does not open with it is tried as version 1's (raw
// or legacy). With another number only that version is tried. Disabled
// versions decrypt.
//
// Every failure is [ErrDecrypt] (a version k does not have included),
// except the errors of [SecretKey.Decrypt] for a key this build cannot use.
func (k Key) Decrypt(ciphertext, associatedData []byte, number uint32) ([]byte, uint32, error) {
	if k.ring == nil && number <= 1 {
		p, err := k.Secret.Decrypt(ciphertext, associatedData)
		return p, 1, err
	}
	named, versioned := versionHeader(ciphertext)
	if number > 1 && (!versioned || named != number) {
		return nil, 0, ErrDecrypt
	}
	if versioned && number != 1 {
		if v, ok := k.version(named); ok {
			p, err := v.Key.Secret.decryptVersioned(ciphertext, associatedData)
			if err == nil || number != 0 {
				return p, named, err
			}
		} else if number != 0 {
			return nil, 0, ErrDecrypt
		}
	}
	v1, ok := k.version(1)
	if !ok { // version 1 is kept in every ring; never true
		return nil, 0, ErrDecrypt
	}
	p, err := v1.Key.Secret.Decrypt(ciphertext, associatedData)
	return p, 1, err
}

// Unknown reports whether ciphertext names a version newer than every
// version of k: the key may have been rotated since k was read.
func (k Key) Unknown(ciphertext []byte) bool {
	v, ok := versionHeader(ciphertext)
	return ok && v > k.Latest()
}

// VersionInfo describes a version for listings.
type VersionInfo struct {
	Number    uint32
	Type      KeyType
	CreatedAt time.Time
	CreatedBy string
	Disabled  bool
	Current   bool
}

// Info returns the descriptions of the versions of k, ascending.
func (k Key) Info() []VersionInfo {
	cur := k.Current()
	vs := k.Versions()
	out := make([]VersionInfo, len(vs))
	for i, v := range vs {
		out[i] = VersionInfo{
			Number: v.Number, Type: v.Key.Secret.Type(), CreatedAt: v.Key.CreatedAt,
			CreatedBy: v.Key.CreatedBy, Disabled: v.Disabled, Current: v.Number == cur,
		}
	}
	return out
}
