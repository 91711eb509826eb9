package main

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
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

// TestBannerMemoryLimit: the banner's Mem limit line names the limit in force and
// whether GOMEMLIMIT or the server's default set it.
func TestBannerMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(512 << 20)
	env := &Env{LookupEnv: func(string) (string, bool) { return "", false }}
	if got, want := memoryLimit(env), "512 MiB (default; GOMEMLIMIT changes it)"; got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	env.LookupEnv = func(k string) (string, bool) { return "off", k == "GOMEMLIMIT" }
	debug.SetMemoryLimit(math.MaxInt64)
	if got, want := memoryLimit(env), "off (GOMEMLIMIT)"; got != want {
		t.Errorf("GOMEMLIMIT=off: %q, want %q", got, want)
	}
	debug.SetMemoryLimit(3 << 30)
	if got, want := memoryLimit(env), fmt.Sprintf("%d MiB (GOMEMLIMIT)", 3<<10); got != want {
		t.Errorf("GOMEMLIMIT=3GiB: %q, want %q", got, want)
	}
}
