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
		writeBytesJSON(rec, bytesField{"plaintext", tt.a}, bytesField{"ciphertext", tt.b})
		want, _ := json.Marshal(struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext []byte `json:"ciphertext"`
		}{tt.a, tt.b})
		if got := rec.Body.String(); got != string(want)+"\n" {
			t.Errorf("got %q, want %q", got, want)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", rec.Header())
		}
	}
}
