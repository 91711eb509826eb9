package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/openkes/kes"
)

// FuzzDecodeBytesFields: whenever the fast path accepts a body, a
// json.Decoder (upstream's decoder) accepts it too and finds the same
// values.
func FuzzDecodeBytesFields(f *testing.F) {
	for _, s := range []string{
		`{"ciphertext":"AAEC","context":"YnVja2V0"}`,
		`{"Ciphertext": "AAEC" , "CONTEXT":null}trailing`,
		` {"context":"","version":"v1","ciphertext":"AAECAw=="} `,
		`{"ciphertext":"AAEC","ciphertext":"AwQF"}`,
		`{"ciphertext":"AA\u0045C"}`, `{"ciphertext":"!!"}`, `{}`, `{"a":1}`, `[]`, `{"ciphertext":"AAEC"`,
		`{"ciphertext":"AAEC",}`, "{\"ciphertext\":\"AA\nEC\"}", `{"Version":"2","version":null}`, `{"version":3}`, `{"ciphertext":"AAEC" "context":"AA"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast kes.DecryptKeyRequest
		ok := decodeBytesFields(data, []string{"ciphertext", "context"}, []*[]byte{&fast.Ciphertext, &fast.Context}, &fast.Version)
		if !ok {
			return
		}
		var ref kes.DecryptKeyRequest
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&ref); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", data, err)
		}
		for _, p := range [][2][]byte{{fast.Ciphertext, ref.Ciphertext}, {fast.Context, ref.Context}} {
			if !bytes.Equal(p[0], p[1]) || (p[0] == nil) != (p[1] == nil) {
				t.Fatalf("%q: fast %q (nil %v), encoding/json %q (nil %v)", data, p[0], p[0] == nil, p[1], p[1] == nil)
			}
		}
		if fast.Version != ref.Version {
			t.Fatalf("%q: fast version %q, encoding/json %q", data, fast.Version, ref.Version)
		}
	})
}

// TestDecodeBytesFields pins which bodies take the fast path.
func TestDecodeBytesFields(t *testing.T) {
	for body, want := range map[string]bool{
		`{"ciphertext":"AAEC","context":"YnVja2V0"}`: true,
		`{"Ciphertext":"AAEC"}  {"x":`:               true,
		`{"context":null,"version":"v1"}`:            true,
		`{}`:                                         true,
		`{"ciphertext":"AA\u0045C"}`:                 false, // escape
		`{"ciphertext":"!!"}`:                        false, // invalid base64
		`{"ciphertext":1}`:                           false,
		`{"ciphertext":"AAEC"`:                       false,
		`["x"]`:                                      false,
		`{"ciphertext":"AAEC","context":{"a":"b"}}`:  false,
		"{\"k\u212aey\":\"AAEC\"}":                   false, // non-ASCII name
		`{"ciphertext":"AAEC",}`:                     false,
	} {
		var req kes.DecryptKeyRequest
		if got := decodeBytesFields([]byte(body), []string{"ciphertext", "context"}, []*[]byte{&req.Ciphertext, &req.Context}, &req.Version); got != want {
			t.Errorf("%s: fast path %v, want %v", body, got, want)
		}
	}
}
