package crypto_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
)

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 %q: %v", s, err)
	}
	return b
}

// describe is the body of GET /v1/key/describe.
type describe struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	CreatedAt string `json:"created_at"`
	CreatedBy string `json:"created_by"`
}

// checkDescribe compares k with the describe body the upstream server
// answered for it. Upstream formats created_at with RFC 3339 and nanoseconds.
func checkDescribe(t *testing.T, k crypto.Key, want describe) {
	t.Helper()
	if got := k.Secret.Type().String(); got != want.Algorithm {
		t.Errorf("algorithm = %s, want %s", got, want.Algorithm)
	}
	if got := k.CreatedAt.Format(time.RFC3339Nano); got != want.CreatedAt {
		t.Errorf("created_at = %s, want %s", got, want.CreatedAt)
	}
	if k.CreatedBy != want.CreatedBy {
		t.Errorf("created_by = %q, want %q", k.CreatedBy, want.CreatedBy)
	}
}

type keyVector struct {
	Key          string   `json:"key"`
	File         string   `json:"file"`
	StoredFormat string   `json:"stored_format"`
	Algorithm    string   `json:"algorithm"`
	KeyB64       string   `json:"key_b64"`
	HMACKeyB64   *string  `json:"hmac_key_b64"`
	Describe     describe `json:"describe"`
}

// loadKeys parses every keystore/ record listed in keys.jsonl.
func loadKeys(t testing.TB) map[string]crypto.Key {
	t.Helper()
	keys := make(map[string]crypto.Key)
	for _, v := range vectors.ReadJSONL[keyVector](t, "keys.jsonl") {
		k, err := crypto.ParseKey(vectors.ReadFile(t, v.File))
		if err != nil {
			t.Fatalf("%s: %v", v.Key, err)
		}
		keys[v.Key] = k
	}
	return keys
}

func TestKeystoreVectors(t *testing.T) {
	vecs := vectors.ReadJSONL[keyVector](t, "keys.jsonl")
	files, err := os.ReadDir(filepath.Join(vectors.Dir(t), "keystore"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(vecs) {
		t.Fatalf("keystore/ holds %d files, keys.jsonl lists %d", len(files), len(vecs))
	}
	for _, v := range vecs {
		t.Run(v.Key, func(t *testing.T) {
			stored := vectors.ReadFile(t, v.File)
			k, err := crypto.ParseKey(stored)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Secret.Bytes(); !bytes.Equal(got, b64(t, v.KeyB64)) {
				t.Error("master key bytes differ")
			}
			if got := k.Secret.Type().String(); got != v.Algorithm {
				t.Errorf("type = %s, want %s", got, v.Algorithm)
			}
			checkDescribe(t, k, v.Describe)

			switch v.StoredFormat {
			case "protobuf":
				if k.HMAC == nil || v.HMACKeyB64 == nil {
					t.Fatalf("HMAC key = %v, vector %v: both must be present", k.HMAC, v.HMACKeyB64)
				}
				if !bytes.Equal(k.HMAC.Bytes(), b64(t, *v.HMACKeyB64)) {
					t.Error("HMAC key bytes differ")
				}
				out, err := k.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, stored) {
					t.Errorf("MarshalBinary:\n got %s\nwant %s", out, stored)
				}
			case "legacy-json":
				if k.HMAC != nil || v.HMACKeyB64 != nil {
					t.Error("legacy record must have no HMAC key")
				}
				if _, err := k.MarshalBinary(); !errors.Is(err, crypto.ErrInvalidRecord) {
					t.Errorf("MarshalBinary of a legacy key: err = %v, want ErrInvalidRecord", err)
				}
			default:
				t.Fatalf("unknown stored_format %q", v.StoredFormat)
			}
		})
	}
}

func TestCiphertextVectors(t *testing.T) {
	keys := loadKeys(t)
	type vector struct {
		Key           string  `json:"key"`
		Format        string  `json:"format"`
		PlaintextB64  string  `json:"plaintext_b64"`
		ContextB64    *string `json:"context_b64"`
		CiphertextB64 string  `json:"ciphertext_b64"`
		Note          string  `json:"note"`
	}
	for i, v := range vectors.ReadJSONL[vector](t, "ciphertexts.jsonl") {
		t.Run(v.Key, func(t *testing.T) {
			k, ok := keys[v.Key]
			if !ok {
				t.Fatalf("line %d: unknown key %s", i+1, v.Key)
			}
			var context []byte
			if v.ContextB64 != nil {
				context = b64(t, *v.ContextB64)
			}
			ciphertext, plaintext := b64(t, v.CiphertextB64), b64(t, v.PlaintextB64)

			got, err := k.Secret.Decrypt(ciphertext, context)
			if err != nil {
				t.Fatalf("line %d (%s %s): %v", i+1, v.Format, v.Note, err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Fatalf("line %d: plaintext differs", i+1)
			}

			// Re-seal with the same IV and nonce: byte-exact encryption.
			var iv, nonce, sealed []byte
			switch v.Format {
			case "raw":
				n := len(ciphertext) - 28
				sealed, iv, nonce = ciphertext[:n], ciphertext[n:n+16], ciphertext[n+16:]
			case "json", "msgpack":
				if iv, nonce, sealed, ok = crypto.LegacyParts(ciphertext); !ok {
					t.Fatalf("line %d: %s ciphertext does not parse", i+1, v.Format)
				}
			default:
				t.Fatalf("line %d: unknown format %q", i+1, v.Format)
			}
			random := bytes.NewReader(append(append([]byte(nil), iv...), nonce...))
			out, err := k.Secret.EncryptWithRandom(random, plaintext, context)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[:len(out)-28], sealed) || !bytes.Equal(out[len(out)-28:len(out)-12], iv) || !bytes.Equal(out[len(out)-12:], nonce) {
				t.Fatalf("line %d: re-sealed ciphertext differs", i+1)
			}
			if v.Format == "raw" && !bytes.Equal(out, ciphertext) {
				t.Fatalf("line %d: re-sealed raw ciphertext differs", i+1)
			}
		})
	}
}

func TestNegativeVectors(t *testing.T) {
	keys := loadKeys(t)
	type vector struct {
		Case        string `json:"case"`
		Key         string `json:"key"`
		RequestBody string `json:"request_body"`
		Status      int    `json:"status"`
		Error       string `json:"error"`
		Optional    bool   `json:"optional"`
	}
	var invalidBody, unknownKey, optional, checked int
	for i, v := range vectors.ReadJSONL[vector](t, "negative.jsonl") {
		// Decode the body as the server does: strict JSON into []byte fields
		// (padded standard base64; an absent field is empty).
		var body struct {
			Ciphertext []byte `json:"ciphertext"`
			Context    []byte `json:"context"`
		}
		if err := json.Unmarshal([]byte(v.RequestBody), &body); err != nil {
			// Rejected before any decryption: the server's business.
			if v.Status != 400 || v.Error != kes.ErrInvalidBody.Msg {
				t.Errorf("line %d (%s): body is invalid but the server answered %d %q", i+1, v.Case, v.Status, v.Error)
			}
			invalidBody++
			continue
		}
		k, ok := keys[v.Key]
		if !ok {
			// The key lookup fails before decryption: the server's business.
			if v.Status != 404 || v.Error != kes.ErrKeyNotFound.Msg {
				t.Errorf("line %d (%s): unknown key but the server answered %d %q", i+1, v.Case, v.Status, v.Error)
			}
			unknownKey++
			continue
		}
		if v.Status != 400 || v.Error != kes.ErrDecrypt.Msg {
			t.Fatalf("line %d (%s): unexpected answer %d %q", i+1, v.Case, v.Status, v.Error)
		}
		plaintext, err := k.Secret.Decrypt(body.Ciphertext, body.Context)
		if v.Optional {
			// Decided: accepted. See TestUntypedLegacyKeyHonoursLegacyTag.
			if err != nil {
				t.Errorf("line %d (%s): optional line must decrypt: %v", i+1, v.Case, err)
			}
			optional++
			continue
		}
		if !errors.Is(err, crypto.ErrDecrypt) || plaintext != nil {
			t.Errorf("line %d (%s): err = %v, plaintext %x; want crypto.ErrDecrypt", i+1, v.Case, err, plaintext)
		}
		checked++
	}
	// Three bodies are invalid (not JSON, not base64, unpadded base64), one
	// line names a missing key, one line is optional.
	if invalidBody != 3 || unknownKey != 1 || optional != 1 {
		t.Errorf("invalid bodies %d, unknown keys %d, optional %d; want 3, 1, 1", invalidBody, unknownKey, optional)
	}
	if checked != 52 {
		t.Errorf("checked %d lines, want 52", checked)
	}
}

func TestHMACVectors(t *testing.T) {
	keys := loadKeys(t)
	type vector struct {
		Key        string  `json:"key"`
		MessageB64 string  `json:"message_b64"`
		SumB64     *string `json:"sum_b64"`
		Status     int     `json:"status"`
		Error      string  `json:"error"`
	}
	var sums, conflicts, missing int
	for i, v := range vectors.ReadJSONL[vector](t, "hmac.jsonl") {
		k, ok := keys[v.Key]
		switch {
		case !ok:
			if v.Status != 404 || v.Error != kes.ErrKeyNotFound.Msg {
				t.Errorf("line %d: unknown key %s but status %d %q", i+1, v.Key, v.Status, v.Error)
			}
			missing++
		case v.Status == 409:
			if v.Error != kes.ErrNoHMAC.Msg || k.HMAC != nil {
				t.Errorf("line %d: want a key without HMAC key for %q", i+1, v.Error)
			}
			conflicts++
		case v.Status == 200 && v.SumB64 != nil:
			if k.HMAC == nil {
				t.Fatalf("line %d: %s has no HMAC key", i+1, v.Key)
			}
			if got := k.HMAC.Sum(b64(t, v.MessageB64)); !bytes.Equal(got, b64(t, *v.SumB64)) {
				t.Errorf("line %d: sum = %x, want %x", i+1, got, b64(t, *v.SumB64))
			}
			sums++
		default:
			t.Errorf("line %d: unexpected vector %+v", i+1, v)
		}
	}
	if sums != 12 || conflicts != 5 || missing != 1 {
		t.Errorf("sums %d, 409s %d, 404s %d; want 12, 5, 1", sums, conflicts, missing)
	}
}

func TestKeystoreEdgeVectors(t *testing.T) {
	type outcome struct {
		Status *int            `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	type vector struct {
		File           string  `json:"file"`
		Key            string  `json:"key"`
		Description    string  `json:"description"`
		Describe       outcome `json:"describe"`
		EncryptDecrypt outcome `json:"encrypt_decrypt"`
		HMAC           outcome `json:"hmac"`
	}
	vecs := vectors.ReadJSONL[vector](t, "keystore-edge.jsonl")
	files, err := os.ReadDir(filepath.Join(vectors.Dir(t), "keystore-edge"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(vecs) {
		t.Fatalf("keystore-edge/ holds %d files, keystore-edge.jsonl lists %d", len(files), len(vecs))
	}
	for _, v := range vecs {
		t.Run(v.Key, func(t *testing.T) {
			k, err := crypto.ParseKey(vectors.ReadFile(t, v.File))
			// 502 = upstream failed to read the record; null = upstream
			// crashed, where we must fail cleanly as well.
			if st := v.Describe.Status; st == nil || *st == 502 {
				if !errors.Is(err, crypto.ErrInvalidRecord) {
					t.Fatalf("%s: err = %v, want ErrInvalidRecord", v.Description, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", v.Description, err)
			}
			var want describe
			if err := json.Unmarshal(v.Describe.Body, &want); err != nil {
				t.Fatal(err)
			}
			checkDescribe(t, k, want)

			if *v.EncryptDecrypt.Status != 200 {
				t.Fatalf("unexpected encrypt_decrypt status %d", *v.EncryptDecrypt.Status)
			}
			ct, err := k.Secret.Encrypt([]byte("edge"), []byte("context"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := k.Secret.Decrypt(ct, []byte("context")); err != nil || string(pt) != "edge" {
				t.Fatalf("round trip: %q, %v", pt, err)
			}

			switch *v.HMAC.Status {
			case 409:
				if k.HMAC != nil {
					t.Error("want no HMAC key (409)")
				}
			case 200:
				var body struct {
					HMAC []byte `json:"hmac"`
				}
				if err := json.Unmarshal(v.HMAC.Body, &body); err != nil {
					t.Fatal(err)
				}
				if k.HMAC == nil {
					t.Fatal("no HMAC key")
				}
				// The edge run HMAC'd the message "edge".
				if got := k.HMAC.Sum([]byte("edge")); !bytes.Equal(got, body.HMAC) {
					t.Errorf("hmac = %x, want %x", got, body.HMAC)
				}
			default:
				t.Fatalf("unexpected hmac status %d", *v.HMAC.Status)
			}
		})
	}
}
