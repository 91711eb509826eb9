package api

import "encoding/base64"

// decodeBytesFields is a fast path for the request bodies sent on every
// SSE request ({"ciphertext":"…","context":"…"}): a flat JSON object whose
// values are strings or null. It stores the standard base64 decoding of the
// members named in fields into *dst[i], matching names case-insensitively
// as encoding/json does for ASCII, skips other string members, and ignores
// whatever follows the object, as a json.Decoder would. If version is not
// nil, a string member "version" is stored into it (null leaves it as it
// is, as encoding/json does).
//
// It reports false for anything it does not handle exactly like
// encoding/json would (escapes, non-ASCII names, numbers, nesting, invalid
// base64, ...); the caller then decodes with encoding/json, which has the
// last word. FuzzDecodeBytesFields checks that both agree.
func decodeBytesFields(data []byte, names []string, dst []*[]byte, version *string) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for {
		key, j, ok := scanString(data, i)
		if !ok || !isASCII(key) {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		var (
			value  []byte
			isNull bool
		)
		if i+4 <= len(data) && string(data[i:i+4]) == "null" {
			isNull, i = true, i+4
		} else if value, i, ok = scanString(data, i); !ok {
			return false
		}
		if version != nil && !isNull && equalFoldASCII(key, "version") {
			*version = string(value)
		}
		for k, name := range names {
			if !equalFoldASCII(key, name) {
				continue
			}
			if isNull {
				*dst[k] = nil
				break
			}
			b := make([]byte, base64.StdEncoding.DecodedLen(len(value)))
			n, err := base64.StdEncoding.Decode(b, value)
			if err != nil {
				return false
			}
			*dst[k] = b[:n]
			break
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(data, i+1)
		default:
			return false
		}
	}
}

// scanString returns the contents of the JSON string at data[i], which must
// contain no escape and no control character, and the index after it.
func scanString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			// Escapes need unquoting; bytes >= 0x80 need UTF-8
			// validation (encoding/json replaces invalid sequences).
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
