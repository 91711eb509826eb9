package main

import (
	"errors"
	"testing"

	"github.com/openkes/kes/internal/crypto"
)

// TestKeyMemory: the banner's Memory line says whether key bytes are
// locked, and why not.
func TestKeyMemory(t *testing.T) {
	for _, tt := range []struct {
		m       crypto.Memory
		dumpErr error
		want    string
	}{
		{crypto.Memory{Locked: true, NoDump: true, Guarded: true}, nil, "keys in locked memory (mlock, no core dump, guard pages); process not dumpable"},
		{crypto.Memory{NoDump: true, Guarded: true, Problem: "mlock: cannot allocate memory (raise RLIMIT_MEMLOCK, ulimit -l)"}, nil,
			"keys NOT in locked memory: mlock: cannot allocate memory (raise RLIMIT_MEMLOCK, ulimit -l); process not dumpable"},
		{crypto.Memory{Locked: true, NoDump: true, Guarded: true}, errors.New("operation not permitted"),
			"keys in locked memory (mlock, no core dump, guard pages); process dumpable: operation not permitted"},
	} {
		if got := keyMemory(tt.m, tt.dumpErr); got != tt.want {
			t.Errorf("keyMemory(%+v, %v) = %q, want %q", tt.m, tt.dumpErr, got, tt.want)
		}
	}
}
