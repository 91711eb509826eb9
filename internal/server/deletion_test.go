package server

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/vaulttest"
)

// TestSoftDeleteVault: on a real Vault, a soft-deleted key is restored and
// decrypts its old ciphertext, and the server's purge loop purges the
// deleted keys once the retention (2 s here) has passed, and only them.
func TestSoftDeleteVault(t *testing.T) {
	v := vaulttest.Start(t, nil)
	admin, _ := kes.GenerateAPIKey(nil)
	c := vaultConfig(t, v, admin.Identity(), nil, new(atomic.Int64))
	c.Deletion = api.Deletion{Retention: 2 * time.Second, Protect: []string{"keep-*"}}
	c.PurgeInterval = 100 * time.Millisecond
	url, _ := start(t, new(Server), c)
	sdk, err := kes.NewClient([]string{url}, kes.WithAPIKey(admin), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	ctx := t.Context()
	for _, name := range []string{"app", "keep-me", "live"} {
		if err := sdk.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	dek, err := sdk.GenerateKey(ctx, "app", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sdk.DeleteKey(ctx, "keep-me"); !errors.Is(err, kes.ErrKeyProtected) {
		t.Fatalf("delete of a protected key: %v, want ErrKeyProtected", err)
	}
	if err := sdk.DeleteKey(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx")); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("decrypt with a deleted key: %v", err)
	}
	if _, err := sdk.RestoreKey(ctx, "app", time.Time{}); err != nil {
		t.Fatal(err)
	}
	plaintext, err := sdk.Decrypt(ctx, "app", dek.Ciphertext, []byte("ctx"))
	if err != nil || !bytes.Equal(plaintext, dek.Plaintext) {
		t.Fatalf("decrypt after restore: %v", err)
	}

	// Vault answers 200 to deleting a missing key, as upstream.
	if err := sdk.DeleteKey(ctx, "never-existed"); err != nil {
		t.Fatalf("delete of a missing key on Vault: %v, want success as upstream", err)
	}
	if err := sdk.DeleteKey(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the purge loop purges the deleted key", func() error {
		list, err := sdk.ListDeletedKeys(ctx, "")
		if err != nil {
			return err
		}
		if len(list) != 0 {
			return fmt.Errorf("deleted keys: %+v", list)
		}
		return nil
	})
	if _, err := sdk.RestoreKey(ctx, "app", time.Time{}); !errors.Is(err, kes.ErrKeyNotDeleted) {
		t.Fatalf("restore of a purged key: %v, want ErrKeyNotDeleted", err)
	}
	var names []string
	for name, err := range sdk.ListKeys(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if strings.Join(names, ",") != "keep-me,live" {
		t.Fatalf("keys after purge: %v, want keep-me and live", names)
	}
	call := caller{t, client(t, &admin), url, nil}
	if m := call.metric("kes_key_purged_total"); m != "1" {
		t.Errorf("kes_key_purged_total = %s, want 1", m)
	}
}
