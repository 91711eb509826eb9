package crypto

import (
	"encoding/json"

	"github.com/tinylib/msgp/msgp"
)

// msgpackFixArray5 is the first byte of legacy msgpack ciphertexts: a msgpack
// fixarray of 5 elements.
const msgpackFixArray5 = 0x95

// legacyCiphertext is a ciphertext in one of the legacy formats (spec
// crypto.md §5) after parsing. Its slices alias the parsed input.
type legacyCiphertext struct {
	typ    KeyType // algorithm named by the ciphertext's tag
	iv     []byte
	nonce  []byte
	sealed []byte // C‖TAG
}

// parseMsgpackCiphertext parses the msgpack format of releases v0.19.2 –
// 2024-01-11: an array of exactly 5 elements (algorithm str, key id str, IV
// bin, nonce bin, C‖TAG bin) with no trailing bytes. The key id is not
// checked. It reports false if b is not such a ciphertext.
func parseMsgpackCiphertext(b []byte) (legacyCiphertext, bool) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 5 {
		return legacyCiphertext{}, false
	}
	algorithm, b, err := msgp.ReadStringZC(b)
	if err != nil {
		return legacyCiphertext{}, false
	}
	if _, b, err = msgp.ReadStringZC(b); err != nil { // key id
		return legacyCiphertext{}, false
	}
	var c legacyCiphertext
	if c.iv, b, err = msgp.ReadBytesZC(b); err != nil {
		return legacyCiphertext{}, false
	}
	if c.nonce, b, err = msgp.ReadBytesZC(b); err != nil {
		return legacyCiphertext{}, false
	}
	if c.sealed, b, err = msgp.ReadBytesZC(b); err != nil || len(b) != 0 {
		return legacyCiphertext{}, false
	}
	// The four names are exactly the import cipher names.
	if c.typ, err = ParseCipher(string(algorithm)); err != nil {
		return legacyCiphertext{}, false
	}
	if len(c.iv) != ivSize || len(c.nonce) != nonceSize {
		return legacyCiphertext{}, false
	}
	return c, true
}

// jsonCiphertext is the JSON format of releases v0.6.1 – v0.19.1. The key id
// ("id") is not checked, so it is not decoded.
type jsonCiphertext struct {
	AEAD  string `json:"aead"`
	IV    []byte `json:"iv"`
	Nonce []byte `json:"nonce"`
	Bytes []byte `json:"bytes"`
}

// parseJSONCiphertext parses the JSON format of releases v0.6.1 – v0.19.1. It
// reports false if b is not such a ciphertext, including the AES-256-GCM
// format of v0.1 – v0.6 that upstream no longer decrypts.
func parseJSONCiphertext(b []byte) (legacyCiphertext, bool) {
	var v jsonCiphertext
	if err := json.Unmarshal(b, &v); err != nil {
		return legacyCiphertext{}, false
	}
	c := legacyCiphertext{iv: v.IV, nonce: v.Nonce, sealed: v.Bytes}
	switch v.AEAD {
	case "AES-256-GCM-HMAC-SHA-256":
		c.typ = AES256
	case "ChaCha20Poly1305":
		c.typ = ChaCha20
	default:
		return legacyCiphertext{}, false
	}
	if len(c.iv) != ivSize || len(c.nonce) != nonceSize {
		return legacyCiphertext{}, false
	}
	return c, true
}
