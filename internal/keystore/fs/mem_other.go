//go:build !unix

package fs

// allocBytes returns a slice of length 0 and capacity n from the heap.
func allocBytes(n int) []byte { return make([]byte, 0, n) }

// freeBytes leaves b to the garbage collector.
func freeBytes([]byte) {}

// allocUint32s returns a slice of length 0 and capacity n from the heap.
func allocUint32s(n int) []uint32 { return make([]uint32, 0, n) }

// freeUint32s leaves s to the garbage collector.
func freeUint32s([]uint32) {}
