package crypto_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/crypto"
	"google.golang.org/protobuf/encoding/protowire"
)

var specTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestGenerateKeyRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		typ       crypto.KeyType
		createdBy string
		now       time.Time
	}{
		{"AES256", crypto.AES256, "a050837d85070582ccf7394b0988847cc312cb88259b894899f6f239cf1791a5", time.Date(2026, 11, 27, 16, 14, 35, 515230837, time.UTC)},
		{"ChaCha20 non-UTC", crypto.ChaCha20, "admin", time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))},
		{"empty creator", crypto.AES256, "", specTime},
		{"epoch", crypto.ChaCha20, "x", time.Unix(0, 0)},
		{"before epoch", crypto.AES256, "x", time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.GenerateKey(tt.typ, tt.createdBy, tt.now, nil)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := k.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(stored, "\r\n") || len(stored)%4 != 0 {
				t.Errorf("stored value is not one line of padded base64: %q", stored)
			}
			got, err := crypto.ParseKey(stored)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Secret.Equal(k.Secret) || got.Secret.Type() != tt.typ || !got.HMAC.Equal(*k.HMAC) {
				t.Error("keys differ after the round trip")
			}
			if !got.CreatedAt.Equal(tt.now) || got.CreatedAt.Location() != time.UTC || got.CreatedBy != tt.createdBy {
				t.Errorf("got %v by %q, want %v by %q", got.CreatedAt, got.CreatedBy, tt.now, tt.createdBy)
			}
			var fields []protowire.Number
			for b := b64(t, string(stored)); len(b) > 0; {
				num, _, n := protowire.ConsumeField(b)
				if n < 0 {
					t.Fatal(protowire.ParseError(n))
				}
				fields, b = append(fields, num), b[n:]
			}
			want := []protowire.Number{1, 2, 3, 4}
			if tt.createdBy == "" {
				want = want[:3] // empty created_by is omitted
			}
			if !slices.Equal(fields, want) {
				t.Errorf("fields %v, want %v", fields, want)
			}
		})
	}
}

func TestGenerateKeyDeterministic(t *testing.T) {
	random := bytes.NewReader(append(append([]byte(nil), specK...), specH...))
	k, err := crypto.GenerateKey(crypto.AES256, "me", specTime, random)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Secret.Bytes(), specK) || !bytes.Equal(k.HMAC.Bytes(), specH) {
		t.Error("GenerateKey must read the master key, then the HMAC key")
	}
	if _, err := crypto.GenerateKey(crypto.AES256, "me", specTime, bytes.NewReader(specK)); err == nil {
		t.Error("GenerateKey succeeded without randomness for the HMAC key")
	}
}

func TestMarshalBinaryErrors(t *testing.T) {
	h, _ := crypto.NewHMACKey(specH)
	secret := mustSecretKey(t, crypto.AES256, specK)
	tests := []struct {
		name string
		key  crypto.Key
	}{
		{"no HMAC key", crypto.Key{Secret: secret}},
		{"zero secret", crypto.Key{HMAC: &h}},
		{"invalid UTF-8 creator", crypto.Key{Secret: secret, HMAC: &h, CreatedBy: "\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := tt.key.MarshalBinary(); !errors.Is(err, crypto.ErrInvalidRecord) || out != nil {
				t.Errorf("MarshalBinary = %q, %v; want ErrInvalidRecord", out, err)
			}
		})
	}
}

// protoRecord builds protobuf records field by field.
type protoRecord []byte

func (r protoRecord) bytes(num protowire.Number, v []byte) protoRecord {
	r = protowire.AppendTag(r, num, protowire.BytesType)
	return protowire.AppendBytes(r, v)
}

func (r protoRecord) varint(num protowire.Number, v uint64) protoRecord {
	r = protowire.AppendTag(r, num, protowire.VarintType)
	return protowire.AppendVarint(r, v)
}

func (r protoRecord) stored() []byte {
	return []byte(base64.StdEncoding.EncodeToString(r))
}

func subKey(key []byte, typ uint64) []byte {
	return protoRecord(nil).bytes(1, key).varint(2, typ)
}

func TestParseKeyProtobuf(t *testing.T) {
	secret, mac := subKey(specK, 2), subKey(specH, 1)
	ts := protoRecord(nil).varint(1, 1704067200).varint(2, 5)
	tests := []struct {
		name    string
		record  protoRecord
		wantErr bool
		check   func(t *testing.T, k crypto.Key)
	}{
		{
			name:   "reverse field order",
			record: protoRecord(nil).bytes(4, []byte("me")).bytes(3, ts).bytes(2, mac).bytes(1, secret),
			check: func(t *testing.T, k crypto.Key) {
				if k.Secret.Type() != crypto.ChaCha20 || k.CreatedBy != "me" || !k.CreatedAt.Equal(specTime.Add(5)) {
					t.Errorf("got %v %v %q", k.Secret.Type(), k.CreatedAt, k.CreatedBy)
				}
			},
		},
		{
			name:   "unknown fields skipped",
			record: protoRecord(nil).varint(9, 1).bytes(1, secret).bytes(10, []byte("x")).bytes(2, mac).varint(3, 7),
		},
		{
			name:   "empty created_at is the epoch",
			record: protoRecord(nil).bytes(1, secret).bytes(2, mac).bytes(3, nil),
			check: func(t *testing.T, k crypto.Key) {
				if got := k.CreatedAt.Format(time.RFC3339Nano); got != "1970-01-01T00:00:00Z" {
					t.Errorf("created_at = %s", got)
				}
			},
		},
		{
			name:   "repeated submessage is merged",
			record: protoRecord(nil).bytes(1, protoRecord(nil).bytes(1, specK)).bytes(1, protoRecord(nil).varint(2, 1)).bytes(2, mac),
			check: func(t *testing.T, k crypto.Key) {
				if k.Secret.Type() != crypto.AES256 || !bytes.Equal(k.Secret.Bytes(), specK) {
					t.Error("merge lost a field")
				}
			},
		},
		{
			name:   "type keeps the low 32 bits",
			record: protoRecord(nil).bytes(1, subKey(specK, 1<<32|1)).bytes(2, mac),
		},
		{name: "empty", record: nil, wantErr: true},
		{name: "no secret key", record: protoRecord(nil).bytes(2, mac), wantErr: true},
		{name: "no HMAC key", record: protoRecord(nil).bytes(1, secret), wantErr: true},
		{name: "secret type 0", record: protoRecord(nil).bytes(1, subKey(specK, 0)).bytes(2, mac), wantErr: true},
		{name: "secret 33 bytes", record: protoRecord(nil).bytes(1, subKey(seq(0, 33), 1)).bytes(2, mac), wantErr: true},
		{name: "HMAC hash 0", record: protoRecord(nil).bytes(1, secret).bytes(2, subKey(specH, 0)), wantErr: true},
		{name: "created_by not UTF-8", record: protoRecord(nil).bytes(1, secret).bytes(2, mac).bytes(4, []byte{0xff}), wantErr: true},
		{name: "truncated", record: protoRecord(nil).bytes(1, secret).bytes(2, mac)[:70], wantErr: true},
		{name: "bad submessage", record: protoRecord(nil).bytes(1, []byte{0x0a, 0x30}).bytes(2, mac), wantErr: true},
		{name: "field number 0", record: append(protoRecord(nil).bytes(1, secret).bytes(2, mac), 0x00, 0x00), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.ParseKey(tt.record.stored())
			if tt.wantErr {
				if !errors.Is(err, crypto.ErrInvalidRecord) {
					t.Errorf("err = %v, want ErrInvalidRecord", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, k)
			}
		})
	}
}

func TestParseKeyBase64(t *testing.T) {
	const minimal = "CiQKIJJF6DD/rICFZdpaPtl4KOUXk3QPO74F1C+ine5wynPDEAISJAogO+lq6s53eEN7RDeiIBQuMPMOxzpSFUAsDZ4VoI/FsMIQAQ=="
	const created1 = "CiQKIDW2+T/AKRs9qDSBrSqG3Ywd6Xm2/pNCidnZGZizq/meEAESJAogfN9bbJiw5mmT134V42FGwRvppY+JqTTjsLEUgOW4slgQARoMCOvYptgGEPWY1/UBIkA1Mzg5NzNhM2Y2MTdjOGIxNjZjYmFlMWVlZWQ1M2UxMjFjOGJlYmRlMTM2ZGIwYzY3YWI2NjRhMDExMGM4ZDVk"
	const stored = "CiQKIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fEAESJAogICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8QARoGCICByKwGIkBhMDUwODM3ZDg1MDcwNTgyY2NmNzM5NGIwOTg4ODQ3Y2MzMTJjYjg4MjU5Yjg5NDg5OWY2ZjIzOWNmMTc5MWE1"
	tests := []struct {
		name    string
		stored  string
		wantErr bool
	}{
		{"plain", stored, false},
		{"plain with + and /", created1, false},
		{"CRLF wrapped", stored[:76] + "\r\n" + stored[76:152] + "\r\n" + stored[152:] + "\r\n", false},
		{"padded", minimal, false},
		{"unpadded", strings.TrimRight(minimal, "="), true},
		{"URL alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(created1), true},
		{"space", " " + stored, true},
		{"too large", strings.Repeat("A", crypto.MaxRecordSize+4), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := crypto.ParseKey([]byte(tt.stored))
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, crypto.ErrInvalidRecord) {
				t.Errorf("err = %v, want ErrInvalidRecord", err)
			}
		})
	}
}

func TestParseKeyLegacyJSON(t *testing.T) {
	const b = `"bytes":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="`
	tests := []struct {
		name        string
		stored      string
		want        crypto.KeyType
		wantUntyped bool
		wantErr     bool
	}{
		{"bytes only", `{` + b + `}`, crypto.AES256, true, false},
		{"empty algorithm", `{` + b + `,"algorithm":""}`, crypto.AES256, true, false},
		{"AES256", `{` + b + `,"algorithm":"AES256"}`, crypto.AES256, false, false},
		{"AES256-GCM_SHA256", `{"version":"v1",` + b + `,"algorithm":"AES256-GCM_SHA256"}`, crypto.AES256, false, false},
		{"ChaCha20", `{` + b + `,"algorithm":"ChaCha20"}`, crypto.ChaCha20, false, false},
		{"XCHACHA20-POLY1305", `{` + b + `,"algorithm":"XCHACHA20-POLY1305"}`, crypto.ChaCha20, false, false},
		{"unknown algorithm", `{` + b + `,"algorithm":"AES128"}`, 0, false, true},
		{"bad created_at", `{` + b + `,"created_at":"yesterday"}`, 0, false, true},
		{"16-byte key", `{"bytes":"AAECAwQFBgcICQoLDA0ODw=="}`, 0, false, true},
		{"bytes not base64", `{"bytes":"!!"}`, 0, false, true},
		{"null", `null`, 0, false, true},
		{"array", `[1,2]`, 0, false, true},
		{"empty object", `{}`, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.ParseKey([]byte(tt.stored))
			if tt.wantErr {
				if !errors.Is(err, crypto.ErrInvalidRecord) {
					t.Errorf("err = %v, want ErrInvalidRecord", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Secret.Type() != tt.want || k.Secret.Untyped() != tt.wantUntyped || k.HMAC != nil {
				t.Errorf("type %v untyped %v HMAC %v; want %v %v nil", k.Secret.Type(), k.Secret.Untyped(), k.HMAC, tt.want, tt.wantUntyped)
			}
			if !k.CreatedAt.IsZero() {
				t.Errorf("created_at = %v, want the zero time", k.CreatedAt)
			}
		})
	}
}

// TestUntypedLegacyKeyHonoursLegacyTag pins a decision on negative.jsonl's
// optional line (spec crypto.md §4): for keys stored without an algorithm
// ({"bytes"} records of v0.1 – v0.19.1) we decrypt a legacy JSON or msgpack
// ciphertext whose tag names ChaCha20 with ChaCha20. Servers before 2024 chose
// the algorithm of such keys per CPU at encryption time, so old servers
// without AES hardware (some ARM hosts) wrote ChaCha20 ciphertexts under them
// that upstream HEAD can no longer decrypt. Accepting them is a strict
// superset of HEAD: the key's own type (AES256) is tried first, and keys that
// name their algorithm keep ignoring the tag, as HEAD.
func TestUntypedLegacyKeyHonoursLegacyTag(t *testing.T) {
	const bytesOnly = `{"bytes":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`
	untyped := mustParseKey(t, bytesOnly).Secret
	typedAES := mustParseKey(t, `{"bytes":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","algorithm":"AES256"}`).Secret

	// The §9.2 ChaCha20 ciphertext, and the §9.1 AES256 one, in legacy forms.
	chachaSealed := unhex(t, "403a700bb278f64b2105cbb4a18ca144e8f6769ef92f42ecc8")
	aesSealed := unhex(t, "1885211d886abf2f8f6cdfc1237416607f77b6d2553fc32519")
	jsonCT := func(aead string, sealed []byte) []byte {
		return []byte(`{"aead":"` + aead + `","iv":"` + base64.StdEncoding.EncodeToString(specIV) +
			`","nonce":"` + base64.StdEncoding.EncodeToString(specN) + `","bytes":"` + base64.StdEncoding.EncodeToString(sealed) + `"}`)
	}
	msgpackCT := func(alg string, sealed []byte) []byte {
		b := append([]byte{0x95, 0xa0 | byte(len(alg))}, alg...)
		b = append(b, 0xa0) // empty key id
		b = append(append(b, 0xc4, 16), specIV...)
		b = append(append(b, 0xc4, 12), specN...)
		return append(append(b, 0xc4, byte(len(sealed))), sealed...)
	}
	raw := func(sealed []byte) []byte {
		return append(append(bytes.Clone(sealed), specIV...), specN...)
	}

	tests := []struct {
		name       string
		key        crypto.SecretKey
		ciphertext []byte
		ok         bool
	}{
		{"untyped, JSON tagged ChaCha20", untyped, jsonCT("ChaCha20Poly1305", chachaSealed), true},
		{"untyped, msgpack tagged XCHACHA20-POLY1305", untyped, msgpackCT("XCHACHA20-POLY1305", chachaSealed), true},
		{"untyped, msgpack tagged ChaCha20", untyped, msgpackCT("ChaCha20", chachaSealed), true},
		{"untyped, AES ciphertext tagged ChaCha20 (as HEAD)", untyped, jsonCT("ChaCha20Poly1305", aesSealed), true},
		{"untyped, AES ciphertext tagged AES (as HEAD)", untyped, msgpackCT("AES256", aesSealed), true},
		{"untyped, raw ChaCha20 has no tag", untyped, raw(chachaSealed), false},
		{"typed AES256 ignores the tag (as HEAD)", typedAES, jsonCT("ChaCha20Poly1305", chachaSealed), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.key.Decrypt(tt.ciphertext, specA)
			if tt.ok {
				if err != nil || !bytes.Equal(pt, specP) {
					t.Errorf("Decrypt = %q, %v; want %q", pt, err, specP)
				}
				return
			}
			if !errors.Is(err, crypto.ErrDecrypt) {
				t.Errorf("err = %v, want crypto.ErrDecrypt", err)
			}
		})
	}
}

func TestMsgpackHeaders(t *testing.T) {
	// Writers used fixstr/str8 and bin8/bin16/bin32 (spec §5.2); all parse.
	k := mustSecretKey(t, crypto.AES256, specK)
	sealed := unhex(t, "1885211d886abf2f8f6cdfc1237416607f77b6d2553fc32519")
	alg := "AES256-GCM_SHA256"
	tests := []struct {
		name string
		ct   string
		ok   bool
	}{
		{"str8 algorithm, bin16 payload", "95d911" + hex.EncodeToString([]byte(alg)) + "a0c410" + hex.EncodeToString(specIV) + "c40c" + hex.EncodeToString(specN) + "c50019" + hex.EncodeToString(sealed), true},
		{"bin32 payload", "95b1" + hex.EncodeToString([]byte(alg)) + "a0c410" + hex.EncodeToString(specIV) + "c40c" + hex.EncodeToString(specN) + "c600000019" + hex.EncodeToString(sealed), true},
		{"bin algorithm", "95c411" + hex.EncodeToString([]byte(alg)) + "a0c410" + hex.EncodeToString(specIV) + "c40c" + hex.EncodeToString(specN) + "c419" + hex.EncodeToString(sealed), false},
		{"str IV", "95b1" + hex.EncodeToString([]byte(alg)) + "a0b0" + hex.EncodeToString(specIV) + "c40c" + hex.EncodeToString(specN) + "c419" + hex.EncodeToString(sealed), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.Decrypt(unhex(t, tt.ct), specA)
			if tt.ok != (err == nil) {
				t.Errorf("err = %v, want success: %v", err, tt.ok)
			}
		})
	}
}

// A record the HSM layer wrapped, read by a server without the hsm section,
// says so instead of "neither JSON nor base64".
func TestParseKeyHSMWrapped(t *testing.T) {
	_, err := crypto.ParseKey([]byte(crypto.HSMRecordPrefix + "AQIDBA=="))
	if !errors.Is(err, crypto.ErrHSMWrapped) || !errors.Is(err, crypto.ErrInvalidRecord) {
		t.Fatalf("ParseKey(wrapped) = %v, want ErrHSMWrapped and ErrInvalidRecord", err)
	}
}
