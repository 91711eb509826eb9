package crypto

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapChunk maps size bytes (rounded up to pages) between two guard pages,
// locks them and excludes them from core dumps. Memory it cannot map comes
// from the Go heap; a lock or advice that fails is reported, not fatal:
// the server still runs where RLIMIT_MEMLOCK is 0.
func mapChunk(size int) ([]byte, Memory) {
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	mem, err := unix.Mmap(-1, 0, size+2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, size), Memory{Problem: "mmap: " + err.Error()}
	}
	// The chunk is never unmapped: freed slots are zeroed and reused.
	data := mem[page : page+size : page+size]
	st := Memory{Locked: true, NoDump: true, Guarded: true, LockedKB: size >> 10}
	if err := unix.Mprotect(mem[:page], unix.PROT_NONE); err != nil {
		st.Guarded, st.Problem = false, "mprotect: "+err.Error()
	} else if err := unix.Mprotect(mem[page+size:], unix.PROT_NONE); err != nil {
		st.Guarded, st.Problem = false, "mprotect: "+err.Error()
	}
	if err := unix.Madvise(data, unix.MADV_DONTDUMP); err != nil {
		st.NoDump, st.Problem = false, "madvise(MADV_DONTDUMP): "+err.Error()
	}
	if err := unix.Mlock(data); err != nil {
		st.Locked, st.LockedKB, st.Problem = false, 0, "mlock: "+err.Error()+" (raise RLIMIT_MEMLOCK, ulimit -l)"
	}
	return data, st
}

// ProtectProcess makes the process non-dumpable (prctl PR_SET_DUMPABLE 0):
// no core file, and no ptrace or /proc/<pid>/mem access by other processes
// of the same user. The server calls it at start.
func ProtectProcess() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
