package server

import (
	"runtime/debug"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore/mem"
)

// TestMemoryLimit: the server sets its memory limit unless the environment
// has GOMEMLIMIT, which the Go runtime has then applied itself. The limit
// belongs to the process, so the test restores it.
func TestMemoryLimit(t *testing.T) {
	const outside = 3 << 30 // as if GOMEMLIMIT=3GiB
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int64
	}{
		{"default", map[string]string{}, MemoryLimit},
		{"GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "3GiB"}, outside},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(outside)
			admin, _ := kes.GenerateAPIKey(nil)
			s := &Server{LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }}
			start(t, s, memConfig(t, admin.Identity(), new(mem.Store)))
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Errorf("memory limit %d, want %d", got, tc.want)
			}
		})
	}
}
