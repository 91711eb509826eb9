package vault

import (
	"encoding/base64"
	"errors"
	"hash/fnv"
	"strings"
	"unicode/utf8"
)

// binaryPrefix marks a stored value that is not valid UTF-8. A Vault secret
// holds JSON strings, which cannot carry such bytes (upstream replaces them
// with U+FFFD and so corrupts the value); they are stored as
// binaryPrefix + base64. Key records are base64 or JSON text, so values
// written by KES are always stored verbatim, in upstream's layout.
const binaryPrefix = "openkes:base64:"

func encodeValue(v []byte) string {
	if utf8.Valid(v) && !strings.HasPrefix(string(v), binaryPrefix) && !isTransitCiphertext(string(v)) {
		return string(v)
	}
	return binaryPrefix + base64.StdEncoding.EncodeToString(v)
}

func decodeValue(s string) ([]byte, error) {
	if !strings.HasPrefix(s, binaryPrefix) {
		return []byte(s), nil
	}
	b, err := base64.StdEncoding.DecodeString(s[len(binaryPrefix):])
	if err != nil {
		return nil, errors.New("stored binary value is not base64")
	}
	return b, nil
}

func nameHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}
