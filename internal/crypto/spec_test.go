package crypto_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/openkes/kes/internal/crypto"
	"golang.org/x/crypto/chacha20"
)

// Common inputs of the worked examples, spec crypto.md §9.
var (
	specK  = seq(0x00, 32)
	specH  = seq(0x20, 32)
	specIV = seq(0xf0, 16)
	specN  = seq(0xa0, 12)
	specP  = []byte("Hello KES")
	specA  = []byte("bucket/object")
)

func seq(from byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func specRandom() *bytes.Reader {
	return bytes.NewReader(append(append([]byte(nil), specIV...), specN...))
}

func mustSecretKey(t testing.TB, typ crypto.KeyType, key []byte) crypto.SecretKey {
	t.Helper()
	k, err := crypto.NewSecretKey(typ, key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustParseKey(t testing.TB, stored string) crypto.Key {
	t.Helper()
	k, err := crypto.ParseKey([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSpecRawCiphertexts covers §9.1 (AES256) and §9.2 (ChaCha20).
func TestSpecRawCiphertexts(t *testing.T) {
	tests := []struct {
		name       string
		typ        crypto.KeyType
		derived    string // K'
		sealed     string // C‖TAG
		ciphertext string // API base64
	}{
		{
			name:       "9.1 AES256",
			typ:        crypto.AES256,
			derived:    "15277b2758ff673aa92f994bc72b0fe904395f0cb18d40f582c503c89397b637",
			sealed:     "1885211d886abf2f8f6cdfc1237416607f77b6d2553fc32519",
			ciphertext: "GIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGfDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs=",
		},
		{
			name:       "9.2 ChaCha20",
			typ:        crypto.ChaCha20,
			derived:    "969e1d9115842722d5eae8d284f3b3df60f137195872dc2cfb786bf75a22054d",
			sealed:     "403a700bb278f64b2105cbb4a18ca144e8f6769ef92f42ecc8",
			ciphertext: "QDpwC7J49kshBcu0oYyhROj2dp75L0LsyPDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var derived []byte
			if tt.typ == crypto.AES256 {
				derived = crypto.KDF(specK, specIV)
			} else {
				var err error
				if derived, err = chacha20.HChaCha20(specK, specIV); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(derived, unhex(t, tt.derived)) {
				t.Errorf("K' = %x, want %s", derived, tt.derived)
			}

			k := mustSecretKey(t, tt.typ, specK)
			ct, err := k.EncryptWithRandom(specRandom(), specP, specA)
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.StdEncoding.EncodeToString(ct); got != tt.ciphertext {
				t.Errorf("ciphertext = %s, want %s", got, tt.ciphertext)
			}
			if !bytes.Equal(ct[:len(ct)-28], unhex(t, tt.sealed)) {
				t.Errorf("sealed = %x, want %s", ct[:len(ct)-28], tt.sealed)
			}

			pt, err := k.Decrypt(b64(t, tt.ciphertext), specA)
			if err != nil || !bytes.Equal(pt, specP) {
				t.Errorf("Decrypt = %q, %v; want %q", pt, err, specP)
			}
			if _, err := k.Decrypt(b64(t, tt.ciphertext), nil); !errors.Is(err, crypto.ErrDecrypt) {
				t.Errorf("Decrypt without context: err = %v, want crypto.ErrDecrypt", err)
			}
		})
	}
}

// TestHChaCha20SelfCheck pins the HChaCha20 used by ChaCha20 keys to the
// vector of draft-irtf-cfrg-xchacha §2.2.1 (spec crypto.md §9.2).
func TestHChaCha20SelfCheck(t *testing.T) {
	got, err := chacha20.HChaCha20(specK, unhex(t, "000000090000004a0000000031415927"))
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
	if !bytes.Equal(got, want) {
		t.Errorf("HChaCha20 = %x, want %x", got, want)
	}
}

// TestSpecLegacyCiphertexts covers §9.3: the §9.1 ciphertext in the JSON and
// msgpack encodings.
func TestSpecLegacyCiphertexts(t *testing.T) {
	const keyID = "630dcd2966c4336691125448bbb25b4f"
	sum := sha256.Sum256(specK)
	if got := hex.EncodeToString(sum[:16]); got != keyID {
		t.Fatalf("key id = %s, want %s", got, keyID)
	}

	msgpackHex := "95" + "b1" + hex.EncodeToString([]byte("AES256-GCM_SHA256")) +
		"d920" + hex.EncodeToString([]byte(keyID)) +
		"c410" + hex.EncodeToString(specIV) +
		"c40c" + hex.EncodeToString(specN) +
		"c419" + "1885211d886abf2f8f6cdfc1237416607f77b6d2553fc32519"
	const msgpackB64 = "lbFBRVMyNTYtR0NNX1NIQTI1NtkgNjMwZGNkMjk2NmM0MzM2NjkxMTI1NDQ4YmJiMjViNGbEEPDx8vP09fb3+Pn6+/z9/v/EDKChoqOkpaanqKmqq8QZGIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGQ=="
	if got := base64.StdEncoding.EncodeToString(unhex(t, msgpackHex)); got != msgpackB64 {
		t.Fatalf("msgpack hex and base64 of §9.3 disagree:\n%s\n%s", got, msgpackB64)
	}

	tests := []struct {
		name       string
		ciphertext []byte
	}{
		{"json", []byte(`{"aead":"AES-256-GCM-HMAC-SHA-256","id":"630dcd2966c4336691125448bbb25b4f","iv":"8PHy8/T19vf4+fr7/P3+/w==","nonce":"oKGio6Slpqeoqaqr","bytes":"GIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGQ=="}`)},
		{"msgpack", b64(t, msgpackB64)},
	}
	k := mustSecretKey(t, crypto.AES256, specK)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := k.Decrypt(tt.ciphertext, specA)
			if err != nil || !bytes.Equal(pt, specP) {
				t.Errorf("Decrypt = %q, %v; want %q", pt, err, specP)
			}
			if _, err := k.Decrypt(tt.ciphertext, []byte("bucket/other")); !errors.Is(err, crypto.ErrDecrypt) {
				t.Errorf("wrong context: err = %v, want crypto.ErrDecrypt", err)
			}
		})
	}
}

// TestSpecStoredRecord covers §9.4: the protobuf record, its describe output
// and HMAC, and the legacy JSON record of the ChaCha20 example.
func TestSpecStoredRecord(t *testing.T) {
	const (
		createdBy = "a050837d85070582ccf7394b0988847cc312cb88259b894899f6f239cf1791a5"
		stored    = "CiQKIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fEAESJAogICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8QARoGCICByKwGIkBhMDUwODM3ZDg1MDcwNTgyY2NmNzM5NGIwOTg4ODQ3Y2MzMTJjYjg4MjU5Yjg5NDg5OWY2ZjIzOWNmMTc5MWE1"
	)
	wantProto := "0a24" + "0a20" + hex.EncodeToString(specK) + "1001" +
		"1224" + "0a20" + hex.EncodeToString(specH) + "1001" +
		"1a06" + "088081c8ac06" +
		"2240" + hex.EncodeToString([]byte(createdBy))
	if got := hex.EncodeToString(b64(t, stored)); got != wantProto {
		t.Fatalf("§9.4 protobuf hex and stored value disagree")
	}

	h, err := crypto.NewHMACKey(specH)
	if err != nil {
		t.Fatal(err)
	}
	k := crypto.Key{
		Secret:    mustSecretKey(t, crypto.AES256, specK),
		HMAC:      &h,
		CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		CreatedBy: createdBy,
	}
	out, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != stored {
		t.Errorf("MarshalBinary = %s, want %s", out, stored)
	}

	parsed := mustParseKey(t, stored)
	checkDescribe(t, parsed, describe{Algorithm: "AES256", CreatedAt: "2024-01-01T00:00:00Z", CreatedBy: createdBy})
	if !parsed.Secret.Equal(k.Secret) || parsed.HMAC == nil || !parsed.HMAC.Equal(h) {
		t.Error("parsed keys differ")
	}
	if got := base64.StdEncoding.EncodeToString(parsed.HMAC.Sum([]byte("hello"))); got != "GuwHRQLyRjkSoZHKTZPHcFJDZ8iv1Ar4dmzwqWiIvYw=" {
		t.Errorf("HMAC(hello) = %s", got)
	}

	legacy := mustParseKey(t, `{"bytes":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","algorithm":"XCHACHA20-POLY1305","created_at":"2024-01-01T00:00:00Z"}`)
	if legacy.Secret.Type() != crypto.ChaCha20 || legacy.HMAC != nil {
		t.Fatalf("legacy record: type %v, HMAC %v; want ChaCha20 without HMAC key", legacy.Secret.Type(), legacy.HMAC)
	}
	pt, err := legacy.Secret.Decrypt(b64(t, "QDpwC7J49kshBcu0oYyhROj2dp75L0LsyPDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs="), specA)
	if err != nil || !bytes.Equal(pt, specP) {
		t.Errorf("legacy record Decrypt = %q, %v", pt, err)
	}
}
