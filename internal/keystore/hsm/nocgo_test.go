//go:build !cgo

package hsm_test

import (
	"errors"
	"testing"

	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/mem"
)

// Without cgo, Wrap fails with ErrNoPKCS11 instead of crashing.
func TestNoPKCS11(t *testing.T) {
	c := &hsm.Config{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "kes", PIN: "1234", Key: "kes-wrap"}
	_, err := hsm.Wrap(t.Context(), new(mem.Store), c, nil)
	if !errors.Is(err, hsm.ErrNoPKCS11) {
		t.Fatalf("Wrap = %v, want ErrNoPKCS11", err)
	}
}
