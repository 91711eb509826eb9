package crypto_test

import (
	"bytes"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/crypto"
	"golang.org/x/sys/cpu"
)

var keyTypes = []crypto.KeyType{crypto.AES256, crypto.ChaCha20}

func TestKeyTypeString(t *testing.T) {
	tests := []struct {
		typ  crypto.KeyType
		want string
	}{
		{crypto.AES256, "AES256"},
		{crypto.ChaCha20, "ChaCha20"},
		{0, "KeyType(0)"},
		{3, "KeyType(3)"},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("KeyType(%d).String() = %q, want %q", uint32(tt.typ), got, tt.want)
		}
	}
}

func TestParseCipher(t *testing.T) {
	tests := []struct {
		name    string
		want    crypto.KeyType
		wantErr error
	}{
		{"AES256", crypto.AES256, nil},
		{"AES256-GCM_SHA256", crypto.AES256, nil},
		{"ChaCha20", crypto.ChaCha20, nil},
		{"XCHACHA20-POLY1305", crypto.ChaCha20, nil},
		{"", 0, crypto.ErrUnsupportedCipher},
		{"aes256", 0, crypto.ErrUnsupportedCipher},
		{"CHACHA20", 0, crypto.ErrUnsupportedCipher},
		{"AES128", 0, crypto.ErrUnsupportedCipher},
		{"AES-256-GCM-HMAC-SHA-256", 0, crypto.ErrUnsupportedCipher}, // a ciphertext tag, not a cipher name
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := crypto.ParseCipher(tt.name)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseCipher(%q) = %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestAESGCMHardware(t *testing.T) {
	tests := []struct {
		arch  string
		flags []string
		want  bool
	}{
		{"amd64", []string{"x86AES", "x86PCLMULQDQ"}, true},
		{"amd64", []string{"x86AES"}, false},
		{"amd64", []string{"x86PCLMULQDQ"}, false},
		{"386", []string{"x86AES", "x86PCLMULQDQ"}, true},
		{"arm64", []string{"armAES", "armPMULL"}, true},
		{"arm64", []string{"armAES"}, false},
		{"arm64", []string{"x86AES", "x86PCLMULQDQ"}, false},
		{"s390x", []string{"s390AES", "s390AESCBC", "s390AESCTR", "s390GHASH"}, true},
		{"s390x", []string{"s390AES", "s390AESCBC", "s390AESCTR", "s390AESGCM"}, true},
		{"s390x", []string{"s390AES", "s390AESCBC", "s390AESCTR"}, false},
		{"s390x", []string{"s390AES", "s390AESCTR", "s390GHASH"}, false},
		{"ppc64le", nil, true},
		{"ppc64", nil, false},
		{"riscv64", nil, false},
	}
	for _, tt := range tests {
		got, err := crypto.AESGCMHardware(tt.arch, tt.flags...)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s %v: got %v, want %v", tt.arch, tt.flags, got, tt.want)
		}
	}
}

func TestDefaultKeyType(t *testing.T) {
	got := crypto.DefaultKeyType()
	if fips140.Enabled() {
		if got != crypto.AES256 {
			t.Errorf("FIPS mode: DefaultKeyType() = %v, want AES256", got)
		}
		return
	}
	if runtime.GOARCH == "amd64" {
		want := crypto.ChaCha20
		if cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ {
			want = crypto.AES256
		}
		if got != want {
			t.Errorf("DefaultKeyType() = %v, want %v", got, want)
		}
	}
	if got != crypto.AES256 && got != crypto.ChaCha20 {
		t.Errorf("DefaultKeyType() = %v", got)
	}
}

func TestNewSecretKey(t *testing.T) {
	tests := []struct {
		name    string
		typ     crypto.KeyType
		size    int
		wantErr error
	}{
		{"AES256", crypto.AES256, 32, nil},
		{"ChaCha20", crypto.ChaCha20, 32, nil},
		{"31 bytes", crypto.AES256, 31, crypto.ErrKeySize},
		{"33 bytes", crypto.ChaCha20, 33, crypto.ErrKeySize},
		{"empty", crypto.AES256, 0, crypto.ErrKeySize},
		{"type 0", 0, 32, crypto.ErrKeyType},
		{"type 3", 3, 32, crypto.ErrKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := seq(1, tt.size)
			k, err := crypto.NewSecretKey(tt.typ, key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if k.Type() != tt.typ || !bytes.Equal(k.Bytes(), key) {
				t.Error("key differs from its input")
			}
			key[0] ^= 1 // the key holds a copy
			if bytes.Equal(k.Bytes(), key) {
				t.Error("NewSecretKey kept a reference to its input")
			}
		})
	}
}

func TestGenerateSecretKey(t *testing.T) {
	k, err := crypto.GenerateSecretKey(crypto.ChaCha20, bytes.NewReader(specK))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(mustSecretKey(t, crypto.ChaCha20, specK)) {
		t.Error("key does not hold the bytes read from random")
	}
	if _, err := crypto.GenerateSecretKey(crypto.AES256, bytes.NewReader(specK[:31])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short random: err = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := crypto.GenerateSecretKey(7, nil); !errors.Is(err, crypto.ErrKeyType) {
		t.Errorf("type 7: err = %v, want ErrKeyType", err)
	}
	a, _ := crypto.GenerateSecretKey(crypto.AES256, nil)
	b, _ := crypto.GenerateSecretKey(crypto.AES256, nil)
	if a.Equal(b) {
		t.Error("two generated keys are equal")
	}
}

func TestEncryptDecrypt(t *testing.T) {
	for _, typ := range keyTypes {
		k, err := crypto.GenerateSecretKey(typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 1, 16, 32, 1000} {
			t.Run(fmt.Sprintf("%v/%d", typ, size), func(t *testing.T) {
				plaintext := seq(7, size)
				ct, err := k.Encrypt(plaintext, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(ct) != size+crypto.Overhead {
					t.Errorf("len = %d, want %d", len(ct), size+crypto.Overhead)
				}
				ct2, _ := k.Encrypt(plaintext, nil)
				if bytes.Equal(ct, ct2) {
					t.Error("two encryptions are equal")
				}
				// Absent and empty associated data are the same (spec §3).
				pt, err := k.Decrypt(ct, []byte{})
				if err != nil || !bytes.Equal(pt, plaintext) || pt == nil {
					t.Errorf("Decrypt = %x, %v; want %x", pt, err, plaintext)
				}
				if _, err := k.Decrypt(ct, []byte("x")); !errors.Is(err, crypto.ErrDecrypt) {
					t.Errorf("other context: err = %v, want crypto.ErrDecrypt", err)
				}
			})
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	aes := mustSecretKey(t, crypto.AES256, specK)
	chacha := mustSecretKey(t, crypto.ChaCha20, specK)
	valid, err := aes.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		key        crypto.SecretKey
		ciphertext []byte
		wantErr    error
	}{
		{"nil", aes, nil, crypto.ErrDecrypt},
		{"28 bytes", aes, make([]byte, 28), crypto.ErrDecrypt},
		{"29 bytes", aes, make([]byte, 29), crypto.ErrDecrypt},
		{"44 zero bytes", chacha, make([]byte, 44), crypto.ErrDecrypt},
		{"brace only", aes, []byte("{"), crypto.ErrDecrypt},
		{"0x95 only", aes, []byte{0x95}, crypto.ErrDecrypt},
		{"JSON null", aes, []byte("null"), crypto.ErrDecrypt},
		{"other type", chacha, valid, crypto.ErrDecrypt},
		{"zero key", crypto.SecretKey{}, valid, crypto.ErrKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.key.Decrypt(tt.ciphertext, nil)
			if !errors.Is(err, tt.wantErr) || pt != nil {
				t.Errorf("Decrypt = %x, %v; want %v", pt, err, tt.wantErr)
			}
		})
	}
	if _, err := (crypto.SecretKey{}).Encrypt(nil, nil); !errors.Is(err, crypto.ErrKeyType) {
		t.Errorf("zero key Encrypt: err = %v, want ErrKeyType", err)
	}
}

func TestDecryptLeavesInputAlone(t *testing.T) {
	for _, typ := range keyTypes {
		k := mustSecretKey(t, typ, specK)
		ct, _ := k.Encrypt([]byte("data key"), []byte("ctx"))
		orig := bytes.Clone(ct)
		if _, err := k.Decrypt(ct, []byte("ctx")); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Decrypt(ct, []byte("bad")); err == nil {
			t.Fatal("wrong context accepted")
		}
		if !bytes.Equal(ct, orig) {
			t.Errorf("%v: Decrypt modified its input", typ)
		}
	}
}

// TestKDF checks the stack-based HMAC-SHA-256 of AES256 keys against
// crypto/hmac.
func TestKDF(t *testing.T) {
	for i := range 100 {
		key, msg := make([]byte, 32), make([]byte, i%33)
		rand.Read(key)
		rand.Read(msg)
		mac := hmac.New(sha256.New, key)
		mac.Write(msg)
		if got, want := crypto.KDF(key, msg), mac.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("KDF(%x, %x) = %x, want %x", key, msg, got, want)
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	h, _ := crypto.NewHMACKey(specH)
	k := crypto.Key{Secret: mustSecretKey(t, crypto.AES256, specK), HMAC: &h, CreatedBy: "me"}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("key", "secret", k.Secret, "hmac", h, "ptr", &h)

	out := fmt.Sprintf("%v %+v %#v %s %x %v %+v %#v %x", k.Secret, k.Secret, k.Secret, k.Secret, k.Secret, h, k, k, h) + log.String()
	for _, secret := range [][]byte{specK, specH} {
		for _, form := range []string{hex.EncodeToString(secret), fmt.Sprint(secret), string(secret[1:8])} {
			if strings.Contains(out, form) {
				t.Fatalf("output contains key material %q:\n%s", form, out)
			}
		}
	}
	if !strings.Contains(out, "SecretKey(AES256)") || !strings.Contains(out, "HMACKey(SHA256)") {
		t.Errorf("output lacks the redacted forms:\n%s", out)
	}
}

func TestDestroy(t *testing.T) {
	k, err := crypto.GenerateKey(crypto.ChaCha20, "me", specTime, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := k.HMAC
	k.Destroy()
	if !bytes.Equal(k.Secret.Bytes(), make([]byte, 32)) || !bytes.Equal(h.Bytes(), make([]byte, 32)) {
		t.Error("key material not zeroed")
	}
	if _, err := k.Secret.Encrypt(nil, nil); !errors.Is(err, crypto.ErrKeyType) {
		t.Errorf("destroyed key Encrypt: err = %v, want ErrKeyType", err)
	}
}

func TestHMACKey(t *testing.T) {
	if _, err := crypto.NewHMACKey(specH[:31]); !errors.Is(err, crypto.ErrKeySize) {
		t.Errorf("31 bytes: err = %v, want ErrKeySize", err)
	}
	h, err := crypto.GenerateHMACKey(bytes.NewReader(specH))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, specH)
	mac.Write([]byte("msg"))
	if got := h.Sum([]byte("msg")); !bytes.Equal(got, mac.Sum(nil)) {
		t.Errorf("Sum = %x", got)
	}
	if _, err := crypto.GenerateHMACKey(strings.NewReader("short")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short random: err = %v", err)
	}
}

func benchmarkKeys(b *testing.B) map[string]crypto.SecretKey {
	keys := make(map[string]crypto.SecretKey)
	for _, typ := range keyTypes {
		keys[typ.String()] = mustSecretKey(b, typ, specK)
	}
	return keys
}

// BenchmarkEncrypt measures /v1/key/generate: sealing a 32-byte data key.
func BenchmarkEncrypt(b *testing.B) {
	for name, k := range benchmarkKeys(b) {
		b.Run(name, func(b *testing.B) {
			dataKey, context := seq(1, 32), []byte(`{"MinIO object":"bucket/object"}`)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Encrypt(dataKey, context); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecrypt measures /v1/key/decrypt of a 32-byte data key.
func BenchmarkDecrypt(b *testing.B) {
	for name, k := range benchmarkKeys(b) {
		b.Run(name, func(b *testing.B) {
			context := []byte(`{"MinIO object":"bucket/object"}`)
			ct, err := k.Encrypt(seq(1, 32), context)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Decrypt(ct, context); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
