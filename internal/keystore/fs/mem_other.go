//go:build !unix

package fs

// allocBytes returns a slice of length 0 and capacity n from the heap.
func allocBytes(n int) []byte { return make([]byte, 0, n) }

// freeBytes leaves b to the garbage collector.
func freeBytes([]byte) {}

// allocUint64s returns a slice of length 0 and capacity n from the heap.
func allocUint64s(n int) []uint64 { return make([]uint64, 0, n) }

// freeUint64s leaves s to the garbage collector.
func freeUint64s([]uint64) {}
