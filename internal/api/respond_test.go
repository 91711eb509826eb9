package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestWriteBytesJSON: the hand-written encoder answers exactly what
// encoding/json would (plus the newline every response ends with).
func TestWriteBytesJSON(t *testing.T) {
	for _, tt := range []struct {
		a, b []byte
	}{
		{nil, nil}, {[]byte{}, []byte{0}}, {[]byte("hello"), make([]byte, 76)}, {[]byte{0xff, 0xfe, 0xfd}, []byte("x")},
	} {
		rec := httptest.NewRecorder()
		// A field without a name (the version of a key never rotated)
		// is left out; a text field is a JSON string.
		writeBytesJSON(rec, bytesField{}, bytesField{name: "plaintext", value: tt.a}, bytesField{},
			bytesField{name: "ciphertext", value: tt.b}, bytesField{name: "version", text: "12"})
		want, _ := json.Marshal(struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext []byte `json:"ciphertext"`
			Version    string `json:"version"`
		}{tt.a, tt.b, "12"})
		if got := rec.Body.String(); got != string(want)+"\n" {
			t.Errorf("got %q, want %q", got, want)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", rec.Header())
		}
	}
}
