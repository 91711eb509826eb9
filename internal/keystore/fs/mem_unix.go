//go:build unix

package fs

import (
	"syscall"
	"unsafe"
)

// allocBytes returns n zero bytes outside the Go heap (an anonymous
// mapping), so that the index does not raise the garbage collector's heap
// goal: with GOGC=200 a 20 MB index on the heap would let the heap grow to
// 60 MB. If the mapping fails, the bytes come from the heap.
func allocBytes(n int) []byte {
	if n > 0 {
		if b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE); err == nil {
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// freeBytes releases what allocBytes returned; b must not be used after.
// Bytes from the heap are left to the garbage collector.
func freeBytes(b []byte) {
	if cap(b) > 0 {
		syscall.Munmap(b[:cap(b)]) // EINVAL for heap bytes: nothing to do
	}
}

// allocUint32s returns a slice of length 0 and capacity n, as allocBytes.
func allocUint32s(n int) []uint32 {
	b := allocBytes(4 * n)
	if cap(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b[:1]))), n)[:0]
}

// freeUint32s releases what allocUint32s returned.
func freeUint32s(s []uint32) {
	if cap(s) > 0 {
		freeBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:1]))), 4*cap(s)))
	}
}
