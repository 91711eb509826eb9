package crypto_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/vectors"
)

// specStored is the stored record of spec crypto.md §9.4.
const specStored = "CiQKIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fEAESJAogICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8QARoGCICByKwGIkBhMDUwODM3ZDg1MDcwNTgyY2NmNzM5NGIwOTg4ODQ3Y2MzMTJjYjg4MjU5Yjg5NDg5OWY2ZjIzOWNmMTc5MWE1"

// countingReader yields b, b+1, b+2, ... : deterministic "randomness".
type countingReader struct{ b byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
		r.b++
	}
	return len(p), nil
}

// Test vectors of docs/key-rotation.md: the §9.4 key rotated once, with the
// master key of version 2 = bytes 40 41 … 5f, created 2025-01-01 by "admin".
const (
	ringVector = "kesring1:CAISzQEIARLIAUNpUUtJQUFCQWdNRUJRWUhDQWtLQ3d3TkRnOFFFUklURkJVV0Z4Z1pHaHNjSFI0ZkVBRVNKQW9nSUNFaUl5UWxKaWNvS1NvckxDMHVMekF4TWpNME5UWTNPRGs2T3p3OVBqOFFBUm9HQ0lDQnlLd0dJa0JoTURVd09ETTNaRGcxTURjd05UZ3lZMk5tTnpNNU5HSXdPVGc0T0RRM1kyTXpNVEpqWWpnNE1qVTVZamc1TkRnNU9XWTJaakl6T1dObU1UYzVNV0UxEoABCAISfENpUUtJRUJCUWtORVJVWkhTRWxLUzB4TlRrOVFVVkpUVkZWV1YxaFpXbHRjWFY1ZkVBRVNKQW9nSUNFaUl5UWxKaWNvS1NvckxDMHVMekF4TWpNME5UWTNPRGs2T3p3OVBqOFFBUm9HQ0lDTDByc0dJZ1ZoWkcxcGJnPT0="
	// v2Ciphertext is "Hello KES" under version 2 with context
	// "bucket/object", IV f0…ff and nonce a0…ab (as spec §9).
	v2Ciphertext = "S1YAAAACgLancPPXdY+z7uYk9qR7RYHYW52DzSvbwfDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs="
)

func rotateSpec(t *testing.T) []byte {
	t.Helper()
	rec, n, err := crypto.RotateRecord([]byte(specStored), "admin", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), &countingReader{b: 0x40})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("version = %d, want 2", n)
	}
	return rec
}

func TestRingVector(t *testing.T) {
	rec := rotateSpec(t)
	if string(rec) != ringVector {
		t.Fatalf("ring record =\n%s\nwant\n%s", rec, ringVector)
	}
	// No upstream reader mistakes it for one of its records: it is neither
	// JSON nor base64 (upstream answers 502 for it).
	if json.Valid(rec) {
		t.Fatal("ring record is valid JSON")
	}
	if _, err := base64.StdEncoding.DecodeString(string(rec)); err == nil {
		t.Fatal("ring record is valid base64")
	}
	// Version 1 is the old record, byte for byte.
	recs, err := crypto.VersionRecords(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(recs[1]) != specStored {
		t.Fatalf("version 1 record = %s, want the §9.4 record", recs[1])
	}
	k, err := crypto.ParseKey(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Rotated() || k.Current() != 2 || k.Latest() != 2 {
		t.Fatalf("rotated %v current %d latest %d", k.Rotated(), k.Current(), k.Latest())
	}
	vs := k.Versions()
	if len(vs) != 2 || !bytes.Equal(vs[1].Key.Secret.Bytes(), seq(0x40, 32)) || vs[1].Key.CreatedBy != "admin" {
		t.Fatalf("versions = %+v", vs)
	}
	// The HMAC key does not rotate: HMACs stay what they were (§9.4).
	if got := base64.StdEncoding.EncodeToString(k.HMAC.Sum([]byte("hello"))); got != "GuwHRQLyRjkSoZHKTZPHcFJDZ8iv1Ar4dmzwqWiIvYw=" {
		t.Fatalf("hmac = %s", got)
	}
	if !bytes.Equal(vs[1].Key.HMAC.Bytes(), k.HMAC.Bytes()) {
		t.Fatal("version 2 has another HMAC key")
	}
	// Describe stays that of the key's creation.
	if k.CreatedBy != "a050837d85070582ccf7394b0988847cc312cb88259b894899f6f239cf1791a5" {
		t.Fatalf("created_by = %s", k.CreatedBy)
	}

	random := bytes.NewReader(append(unhex(t, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), unhex(t, "a0a1a2a3a4a5a6a7a8a9aaab")...))
	ct, n, err := k.EncryptWithRandom(random, 0, []byte("Hello KES"), []byte("bucket/object"))
	if err != nil || n != 2 {
		t.Fatalf("encrypt: version %d, %v", n, err)
	}
	// Checked independently with Python's cryptography package: AES-GCM
	// with key HMAC-SHA-256(K2, IV) and AAD header‖context.
	if got := base64.StdEncoding.EncodeToString(ct); got != v2Ciphertext {
		t.Fatalf("ciphertext = %s, want %s", got, v2Ciphertext)
	}
	if pt, n, err := k.Decrypt(ct, []byte("bucket/object"), 0); err != nil || n != 2 || string(pt) != "Hello KES" {
		t.Fatalf("decrypt = %q, %d, %v", pt, n, err)
	}
	// The §9.1 raw ciphertext is version 1's and still decrypts.
	raw := b64(t, "GIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGfDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs=")
	if pt, n, err := k.Decrypt(raw, []byte("bucket/object"), 0); err != nil || n != 1 || string(pt) != "Hello KES" {
		t.Fatalf("decrypt v1 = %q, %d, %v", pt, n, err)
	}
}

// TestVectorsAfterRotation rotates every upstream vector key twice: each
// upstream ciphertext still decrypts, as version 1, and the HMAC stays.
func TestVectorsAfterRotation(t *testing.T) {
	type vector struct {
		Key           string  `json:"key"`
		PlaintextB64  string  `json:"plaintext_b64"`
		ContextB64    *string `json:"context_b64"`
		CiphertextB64 string  `json:"ciphertext_b64"`
	}
	rotated := make(map[string]crypto.Key)
	for _, v := range vectors.ReadJSONL[keyVector](t, "keys.jsonl") {
		stored := vectors.ReadFile(t, v.File)
		rec := stored
		for range 2 {
			var err error
			if rec, _, err = crypto.RotateRecord(rec, "admin", time.Now(), nil); err != nil {
				t.Fatalf("%s: %v", v.Key, err)
			}
		}
		recs, err := crypto.VersionRecords(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(recs[1], stored) {
			t.Fatalf("%s: version 1 is not the upstream record", v.Key)
		}
		k, err := crypto.ParseKey(rec)
		if err != nil {
			t.Fatalf("%s: %v", v.Key, err)
		}
		if k.Current() != 3 {
			t.Fatalf("%s: current = %d", v.Key, k.Current())
		}
		old, _ := crypto.ParseKey(stored)
		if (old.HMAC == nil) != (k.HMAC == nil) || old.HMAC != nil && !old.HMAC.Equal(*k.HMAC) {
			t.Fatalf("%s: HMAC key changed", v.Key)
		}
		rotated[v.Key] = k
	}
	n := 0
	for _, v := range vectors.ReadJSONL[vector](t, "ciphertexts.jsonl") {
		k := rotated[v.Key]
		var context []byte
		if v.ContextB64 != nil {
			context = b64(t, *v.ContextB64)
		}
		pt, num, err := k.Decrypt(b64(t, v.CiphertextB64), context, 0)
		if err != nil || num != 1 || !bytes.Equal(pt, b64(t, v.PlaintextB64)) {
			t.Fatalf("%s: decrypt = %d, %v", v.Key, num, err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no ciphertext vectors")
	}
}

func TestNeverRotated(t *testing.T) {
	k, err := crypto.ParseKey([]byte(specStored))
	if err != nil {
		t.Fatal(err)
	}
	if k.Rotated() || k.Current() != 1 || len(k.Versions()) != 1 {
		t.Fatalf("rotated %v current %d", k.Rotated(), k.Current())
	}
	if b, err := k.MarshalBinary(); err != nil || string(b) != specStored {
		t.Fatalf("record changed: %s, %v", b, err)
	}
	random := bytes.NewReader(append(seq(0xf0, 16), seq(0xa0, 12)...))
	ct, n, err := k.EncryptWithRandom(random, 0, specP, specA)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	// Upstream's raw ciphertext of §9.1, byte for byte.
	if got := base64.StdEncoding.EncodeToString(ct); got != "GIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGfDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs=" {
		t.Fatalf("ciphertext = %s", got)
	}
	if _, _, err := k.Encrypt(2, specP, nil); !errors.Is(err, crypto.ErrNoVersion) {
		t.Fatalf("version 2 of a key never rotated: %v", err)
	}
	if _, changed, err := crypto.SetDisabledRecord([]byte(specStored), 1, true); !errors.Is(err, crypto.ErrCurrentVersion) || changed {
		t.Fatalf("disable version 1: %v", err)
	}
}

// TestVersionBinding: a ciphertext opens only as the version it was made
// by; a relabelled header, a wrong context or a cut ciphertext fail.
func TestVersionBinding(t *testing.T) {
	rec := rotateSpec(t)
	rec, _, err := crypto.RotateRecord(rec, "admin", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.ParseKey(rec)
	if err != nil {
		t.Fatal(err)
	}
	ct, n, err := k.Encrypt(2, specP, specA)
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	for name, mutate := range map[string]func([]byte) []byte{
		"as version 3": func(c []byte) []byte { c[5] = 3; return c },
		"as version 1": func(c []byte) []byte { return c[6:] },
		"magic":        func(c []byte) []byte { c[0] = 'k'; return c },
		"cut":          func(c []byte) []byte { return c[:len(c)-1] },
	} {
		c := mutate(bytes.Clone(ct))
		if _, _, err := k.Decrypt(c, specA, 0); !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := k.Decrypt(ct, []byte("other"), 0); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("wrong context: %v", err)
	}
	// A request naming the version: only that one is tried.
	if _, _, err := k.Decrypt(ct, specA, 3); !errors.Is(err, crypto.ErrDecrypt) {
		t.Errorf("named version 3: %v", err)
	}
	if pt, n, err := k.Decrypt(ct, specA, 2); err != nil || n != 2 || !bytes.Equal(pt, specP) {
		t.Errorf("named version 2: %d, %v", n, err)
	}
	if !k.Unknown([]byte("KV\x00\x00\x00\x04"+string(make([]byte, 60)))) || k.Unknown(ct) {
		t.Error("Unknown")
	}
}

// TestLooksVersioned: a raw version 1 ciphertext that happens to start
// like a versioned one of an existing version still decrypts as version 1.
func TestLooksVersioned(t *testing.T) {
	v1, err := crypto.ParseKey([]byte(specStored))
	if err != nil {
		t.Fatal(err)
	}
	ivNonce := append(seq(0xf0, 16), seq(0xa0, 12)...)
	// AES-GCM is a stream cipher: encrypting zeros gives the key stream,
	// so the plaintext can choose the ciphertext's first bytes.
	stream, err := v1.Secret.EncryptWithRandom(bytes.NewReader(ivNonce), make([]byte, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	header := []byte{'K', 'V', 0, 0, 0, 2}
	plaintext := make([]byte, 16)
	for i := range header {
		plaintext[i] = header[i] ^ stream[i]
	}
	raw, err := v1.Secret.EncryptWithRandom(bytes.NewReader(ivNonce), plaintext, nil)
	if err != nil || !bytes.Equal(raw[:6], header) {
		t.Fatalf("raw = %x, %v", raw, err)
	}
	k, err := crypto.ParseKey(rotateSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if crypto.CiphertextVersion(raw) != 2 {
		t.Fatal("does not look versioned")
	}
	if pt, n, err := k.Decrypt(raw, nil, 0); err != nil || n != 1 || !bytes.Equal(pt, plaintext) {
		t.Fatalf("decrypt = %d, %v", n, err)
	}
	// The never-rotated key decrypts it too, without looking at versions.
	if pt, n, err := v1.Decrypt(raw, nil, 0); err != nil || n != 1 || !bytes.Equal(pt, plaintext) {
		t.Fatalf("decrypt = %d, %v", n, err)
	}
}

func TestDisableVersion(t *testing.T) {
	rec := rotateSpec(t)
	if _, _, err := crypto.SetDisabledRecord(rec, 2, true); !errors.Is(err, crypto.ErrCurrentVersion) {
		t.Fatalf("disable current: %v", err)
	}
	if _, _, err := crypto.SetDisabledRecord(rec, 7, true); !errors.Is(err, crypto.ErrNoVersion) {
		t.Fatalf("disable missing: %v", err)
	}
	dis, changed, err := crypto.SetDisabledRecord(rec, 1, true)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	k, err := crypto.ParseKey(dis)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Encrypt(1, specP, specA); !errors.Is(err, crypto.ErrVersionDisabled) {
		t.Fatalf("encrypt with disabled version: %v", err)
	}
	raw := b64(t, "GIUhHYhqvy+PbN/BI3QWYH93ttJVP8MlGfDx8vP09fb3+Pn6+/z9/v+goaKjpKWmp6ipqqs=")
	if pt, n, err := k.Decrypt(raw, specA, 0); err != nil || n != 1 || !bytes.Equal(pt, specP) {
		t.Fatalf("disabled version 1 decrypt: %d, %v", n, err)
	}
	if info := k.Info(); !info[0].Disabled || info[1].Disabled || !info[1].Current {
		t.Fatalf("info = %+v", info)
	}
	// Enabling gives back the record it was, byte for byte.
	en, changed, err := crypto.SetDisabledRecord(dis, 1, false)
	if err != nil || !changed || !bytes.Equal(en, rec) {
		t.Fatalf("enable: %v %v", changed, err)
	}
	if same, changed, err := crypto.SetDisabledRecord(rec, 1, false); err != nil || changed || !bytes.Equal(same, rec) {
		t.Fatalf("enable enabled: %v %v", changed, err)
	}
}

func TestRingMalformed(t *testing.T) {
	enc := func(b []byte) []byte { return []byte(crypto.RingPrefix + base64.StdEncoding.EncodeToString(b)) }
	v := func(num uint64, rec string, disabled bool) []byte {
		e := protoRecord(nil).varint(1, num).bytes(2, protoRecord([]byte(rec)))
		if disabled {
			e = e.varint(3, 1)
		}
		return e
	}
	for name, rec := range map[string][]byte{
		"not base64":       []byte(crypto.RingPrefix + "!!"),
		"empty":            enc(nil),
		"no current":       enc(protoRecord(nil).bytes(2, v(1, specStored, false))),
		"current missing":  enc(protoRecord(nil).varint(1, 2).bytes(2, v(1, specStored, false))),
		"current disabled": enc(protoRecord(nil).varint(1, 1).bytes(2, v(1, specStored, true))),
		"descending":       enc(protoRecord(nil).varint(1, 1).bytes(2, v(2, specStored, false)).bytes(2, v(1, specStored, false))),
		"bad record":       enc(protoRecord(nil).varint(1, 1).bytes(2, v(1, "xx", false))),
		"nested ring":      enc(protoRecord(nil).varint(1, 1).bytes(2, v(1, string(rotateSpec(t)), false))),
	} {
		if _, err := crypto.ParseKey(rec); !errors.Is(err, crypto.ErrInvalidRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
