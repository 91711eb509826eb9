//go:build cgo

package hsm_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/hsm"
)

// newRecord returns a fresh §2.1 key record and its 32 master key bytes
// (read from the random source the key is generated from; the test checks
// the record holds them).
func newRecord(t *testing.T) (record, secret []byte) {
	t.Helper()
	random := make([]byte, 64)
	rand.Read(random)
	k, err := crypto.GenerateKey(crypto.AES256, "test", time.Now(), bytes.NewReader(random))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Destroy()
	record, err = k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(string(record))
	if err != nil || !bytes.Contains(raw, random[:32]) {
		t.Fatalf("the record does not hold the key bytes read from the random source (%v)", err)
	}
	return record, random[:32]
}

// TestStoredBytesAreNotTheKey: the files of a wrapped fs store hold neither
// the master keys (raw, base64 or hex) nor the records; copied to another
// directory they decrypt nothing without the HSM, nothing under another
// HSM key, and a record copied to another name does not decrypt.
func TestStoredBytesAreNotTheKey(t *testing.T) {
	tok := newToken(t)
	dir := t.TempDir()
	s := wrap(t, newFS(t, dir), config(tok))
	ctx := t.Context()
	secrets := make(map[string][]byte)
	records := make(map[string][]byte)
	for _, name := range []string{"a", "b", "c"} {
		rec, secret := newRecord(t)
		if err := s.Create(ctx, name, rec); err != nil {
			t.Fatal(err)
		}
		records[name], secrets[name] = rec, secret
	}
	for name, rec := range records {
		got, err := s.Get(ctx, name)
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("Get %s: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !hsm.IsWrapped(b) {
			t.Errorf("file %s is not a wrapped record: %.20q", f.Name(), b)
		}
		all = append(all, b...)
	}
	for name, secret := range secrets {
		for form, b := range map[string][]byte{
			"raw": secret, "base64": []byte(base64.StdEncoding.EncodeToString(secret)),
			"hex": []byte(hex.EncodeToString(secret)), "record": records[name],
		} {
			if bytes.Contains(all, b) {
				t.Errorf("the files hold the %s form of key %s", form, name)
			}
		}
	}

	// Copied elsewhere and read without the HSM: wrapped bytes that the
	// server refuses with ErrHSMWrapped.
	copyDir := t.TempDir()
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		if err := os.WriteFile(filepath.Join(copyDir, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plain := newFS(t, copyDir)
	v, err := plain.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.ParseKey(v); !errors.Is(err, crypto.ErrHSMWrapped) {
		t.Errorf("ParseKey of a wrapped record without the HSM = %v, want ErrHSMWrapped", err)
	}
	plain.Close()

	// Under another HSM key: Wrap refuses the store and writes nothing.
	tok.CreateKey(t, "other", false)
	c := config(tok)
	c.Key = "other"
	if _, err := hsm.Wrap(ctx, newFS(t, copyDir), c, quiet()); !errors.Is(err, hsm.ErrUnwrap) {
		t.Fatalf("Wrap of a store wrapped under another key = %v, want ErrUnwrap", err)
	}
	after, _ := os.ReadDir(copyDir)
	if len(after) != len(files) {
		t.Errorf("the refused Wrap changed the directory: %d files, want %d", len(after), len(files))
	}

	// A record copied to another name does not decrypt.
	b, _ := os.ReadFile(filepath.Join(copyDir, "a"))
	if err := os.WriteFile(filepath.Join(copyDir, "z"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = wrap(t, newFS(t, copyDir), config(tok))
	defer s.Close()
	if _, err := s.Get(ctx, "z"); !errors.Is(err, hsm.ErrUnwrap) || keystore.IsUnreachable(err) {
		t.Errorf("Get of a record copied to another name = %v, want ErrUnwrap", err)
	}
	if got, err := s.Get(ctx, "a"); err != nil || !bytes.Equal(got, records["a"]) {
		t.Errorf("Get a from the copy: %v", err)
	}
	// Creating a copied wrapped record under its own name keeps it; under
	// another name it is refused.
	if err := s.Create(ctx, "y", b); !errors.Is(err, hsm.ErrUnwrap) {
		t.Errorf("Create of a record wrapped for another name = %v, want ErrUnwrap", err)
	}
}

// TestUnwrappedRecordsStayReadable: records stored before the layer (§2.1
// and §2.2) are returned as they are.
func TestUnwrappedRecordsStayReadable(t *testing.T) {
	tok := newToken(t)
	dir := t.TempDir()
	plain := newFS(t, dir)
	rec, _ := newRecord(t)
	legacy := []byte(`{"bytes":"tqtp4E4lzrtHC3+ODuvN8X5Ao7Wl5Dk0ufh3rlLWf4M="}`)
	ctx := t.Context()
	if err := plain.Create(ctx, "proto", rec); err != nil {
		t.Fatal(err)
	}
	if err := plain.Create(ctx, "json", legacy); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	s := wrap(t, newFS(t, dir), config(tok))
	defer s.Close()
	for name, want := range map[string][]byte{"proto": rec, "json": legacy} {
		if got, err := s.Get(ctx, name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get %s = %q, %v", name, got, err)
		}
	}
}
