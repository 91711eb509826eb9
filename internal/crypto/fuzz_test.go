package crypto_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes/internal/crypto"
)

// FuzzParseKey checks that ParseKey never panics, fails only with
// ErrInvalidRecord, and that every record it accepts with an HMAC key
// survives MarshalBinary and ParseKey unchanged.
func FuzzParseKey(f *testing.F) {
	for _, dir := range []string{"keystore", "keystore-edge"} {
		files, err := os.ReadDir(vectors.Path(f, dir))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			f.Add(vectors.ReadFile(f, filepath.Join(dir, file.Name())))
		}
	}
	// Extreme timestamps: time.Unix normalises nanos out of range.
	for _, ts := range [][2]uint64{{1 << 63, 1<<64 - 1}, {1<<63 - 1, 1e9}, {1<<64 - 1, 1<<32 - 1}, {0, 1 << 31}} {
		rec := protoRecord(nil).bytes(1, subKey(specK, 1)).bytes(2, subKey(specH, 1)).
			bytes(3, protoRecord(nil).varint(1, ts[0]).varint(2, ts[1]))
		f.Add(rec.stored())
	}
	f.Add([]byte(ringVector))
	f.Fuzz(func(t *testing.T, stored []byte) {
		k, err := crypto.ParseKey(stored)
		if err != nil {
			if !errors.Is(err, crypto.ErrInvalidRecord) {
				t.Fatalf("err = %v, want ErrInvalidRecord", err)
			}
			return
		}
		if k.Rotated() {
			// A ring is changed by record functions only, which keep
			// every version's record.
			rec, n, err := crypto.RotateRecord(stored, "x", time.Unix(0, 0), nil)
			if errors.Is(err, crypto.ErrTooManyVersions) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			k2, err := crypto.ParseKey(rec)
			if err != nil || k2.Current() != n || len(k2.Versions()) != len(k.Versions())+1 {
				t.Fatalf("rotate of %q: %v", stored, err)
			}
			return
		}
		if k.HMAC == nil {
			return // legacy JSON: never re-encoded
		}
		out, err := k.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := crypto.ParseKey(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !k2.Secret.Equal(k.Secret) || !k2.HMAC.Equal(*k.HMAC) || !k2.CreatedAt.Equal(k.CreatedAt) || k2.CreatedBy != k.CreatedBy {
			t.Fatalf("round trip changed the key: %q -> %q", stored, out)
		}
	})
}

// FuzzDecrypt checks that Decrypt never panics and fails only with
// crypto.ErrDecrypt, for typed keys of both types and an untyped legacy key, and
// that Encrypt output always decrypts.
func FuzzDecrypt(f *testing.F) {
	type vector struct {
		CiphertextB64 string `json:"ciphertext_b64"`
	}
	for _, v := range vectors.ReadJSONL[vector](f, "ciphertexts.jsonl") {
		ct, err := base64.StdEncoding.DecodeString(v.CiphertextB64)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct, []byte("ctx"))
	}
	f.Add([]byte(`{"aead":"ChaCha20Poly1305","iv":"8PHy8/T19vf4+fr7/P3+/w==","nonce":"oKGio6Slpqeoqaqr","bytes":""}`), []byte(nil))
	f.Add([]byte{0x95, 0xa6, 'A', 'E', 'S', '2', '5', '6', 0xa0, 0xc4, 0x10}, []byte(nil))

	keys := []crypto.SecretKey{
		mustSecretKey(f, crypto.AES256, specK),
		mustSecretKey(f, crypto.ChaCha20, specK),
		mustParseKey(f, `{"bytes":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`).Secret,
	}
	f.Fuzz(func(t *testing.T, data, context []byte) {
		for _, k := range keys {
			if pt, err := k.Decrypt(data, context); err != nil && (!errors.Is(err, crypto.ErrDecrypt) || pt != nil) {
				t.Fatalf("%v: Decrypt = %x, %v", k, pt, err)
			}
			ct, err := k.Encrypt(data, context)
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := k.Decrypt(ct, context); err != nil || !bytes.Equal(pt, data) {
				t.Fatalf("%v: round trip = %x, %v", k, pt, err)
			}
		}
	})
}

// FuzzKeyDecrypt checks that a rotated key's Decrypt never panics, fails
// only with ErrDecrypt, and that what it encrypts with any version
// decrypts to the same plaintext with the version reported.
func FuzzKeyDecrypt(f *testing.F) {
	f.Add([]byte(v2CiphertextBytes()), []byte("bucket/object"), uint32(0))
	f.Add(append([]byte{'K', 'V', 0, 0, 0, 9}, make([]byte, 50)...), []byte(nil), uint32(9))
	f.Add([]byte{'K', 'V', 0xff, 0xff, 0xff, 0xff}, []byte(nil), uint32(1))
	rec, _, err := crypto.RotateRecord([]byte(ringVector), "x", time.Unix(0, 0), nil)
	if err != nil {
		f.Fatal(err)
	}
	k, err := crypto.ParseKey(rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data, context []byte, number uint32) {
		if pt, _, err := k.Decrypt(data, context, number); err != nil && (!errors.Is(err, crypto.ErrDecrypt) || pt != nil) {
			t.Fatalf("Decrypt = %x, %v", pt, err)
		}
		ct, used, err := k.Encrypt(number%5, data, context)
		if number%5 > 3 {
			if !errors.Is(err, crypto.ErrNoVersion) {
				t.Fatalf("Encrypt with version %d: %v", number%5, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		pt, got, err := k.Decrypt(ct, context, 0)
		if err != nil || got != used || !bytes.Equal(pt, data) {
			t.Fatalf("round trip: version %d (encrypted with %d), %v", got, used, err)
		}
	})
}

func v2CiphertextBytes() string {
	b, _ := base64.StdEncoding.DecodeString(v2Ciphertext)
	return string(b)
}
