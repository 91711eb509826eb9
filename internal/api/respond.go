package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/openkes/kes"
)

// writeJSON writes v as the JSON body of a 200 response. Like upstream, the
// body ends with a newline.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only values of this package are encoded: cannot happen
		writeError(w, kes.NewError(http.StatusInternalServerError, "failed to encode response"))
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// writeOK answers 200 with an empty body.
func writeOK(w http.ResponseWriter) {
	w.Header()["Content-Length"] = contentLengthZero
	w.WriteHeader(http.StatusOK)
}

// writeError answers with the status and message of err. The body is
// byte-identical to upstream's: {"message":"<text>"\n} — the encoder's
// newline sits before the closing brace, and clients match on the text.
func writeError(w http.ResponseWriter, err *kes.Error) {
	msg, _ := json.Marshal(err.Msg)
	b := make([]byte, 0, len(msg)+14)
	b = append(b, `{"message":`...)
	b = append(b, msg...)
	b = append(b, '\n', '}')
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(err.Status)
	w.Write(b)
}

// Header values shared by all responses; never modified.
var (
	contentTypeJSON   = []string{"application/json"}
	contentTypeNDJSON = []string{"application/x-ndjson"}
	contentLengthZero = []string{"0"}
)

// writeBytesJSON answers 200 with a JSON object of byte-string fields,
// encoded as encoding/json encodes []byte (standard base64 with padding)
// but without reflection: generate, encrypt and decrypt answer this way on
// every request. Field names must not need escaping; a field without a
// name is left out.
func writeBytesJSON(w http.ResponseWriter, fields ...bytesField) {
	n := 3
	for _, f := range fields {
		n += len(f.name) + 7 + base64.StdEncoding.EncodedLen(len(f.value)) + len(f.text)
	}
	bp := responsePool.Get().(*[]byte)
	b := (*bp)[:0]
	b = slices.Grow(b, n)
	b = append(b, '{')
	sep := false
	for _, f := range fields {
		if f.name == "" { // an optional field left out
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":`...)
		if f.text != "" {
			b = append(b, '"')
			b = append(b, f.text...)
			b = append(b, '"')
			continue
		}
		if f.value == nil {
			b = append(b, "null"...) // as encoding/json encodes a nil slice
			continue
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, f.value)
		b = append(b, '"')
	}
	b = append(b, '}', '\n')
	// Content-Length is left to net/http, which sets it for a body written
	// at once by a handler that then returns (HTTP/1.1 and HTTP/2 alike).
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	clear(b) // it may hold a plaintext data key
	if cap(b) <= maxPooledResponse {
		*bp = b
		responsePool.Put(bp)
	}
}

// responsePool holds the buffers of writeBytesJSON.
var responsePool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledResponse bounds the buffers kept in responsePool.
const maxPooledResponse = 4 << 10

type bytesField struct {
	name  string
	value []byte
	text  string // if not empty: written as a JSON string instead of value; must not need escaping
}
