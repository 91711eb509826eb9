//go:build !linux

package crypto

// mapChunk returns heap memory: locking key memory is implemented for
// Linux only.
func mapChunk(size int) ([]byte, Memory) {
	return make([]byte, size), Memory{Problem: "locked key memory is implemented for Linux only"}
}

// ProtectProcess does nothing outside Linux.
func ProtectProcess() error { return nil }
