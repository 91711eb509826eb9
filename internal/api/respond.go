package api

import (
	"encoding/json"
	"net/http"
	"strconv"

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
