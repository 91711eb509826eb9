package crypto

import (
	"bytes"
	"runtime"
	"testing"
)

// TestSlotZeroedWhenUnreachable: once no copy of a key is reachable, its
// slot is zeroed and handed out again.
func TestSlotZeroedWhenUnreachable(t *testing.T) {
	k, err := NewSecretKey(AES256, bytes.Repeat([]byte{0xa5}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	slot := k.key.b // outside the Go heap: does not keep k alive
	inUse := LockedMemory().Slots
	k = SecretKey{}
	// Cleanups run on their own goroutine after the collection that finds
	// the handle unreachable; each round lets them run.
	for i := 0; i < 100 && LockedMemory().Slots >= inUse; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if LockedMemory().Slots >= inUse {
		t.Fatal("the slot of an unreachable key was not released")
	}
	if *slot != zeroKey {
		t.Fatal("a released slot still holds key bytes")
	}
}

// TestDestroyedCopies: destroying a key zeroes the bytes that its copies
// share, and the copies refuse to work instead of using a zero key.
func TestDestroyedCopies(t *testing.T) {
	k, err := GenerateSecretKey(ChaCha20, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := k
	k.Destroy()
	if *c.key.b != zeroKey {
		t.Fatal("key bytes not zeroed")
	}
	if _, err := c.Encrypt([]byte("x"), nil); err != ErrKeyType {
		t.Fatalf("copy of a destroyed key: Encrypt err = %v, want ErrKeyType", err)
	}
}
