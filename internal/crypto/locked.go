package crypto

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Master keys and HMAC keys live in a small arena of locked memory, not on
// the Go heap: pages that the kernel never swaps out (mlock), that core
// dumps leave out (MADV_DONTDUMP), with an inaccessible guard page on
// either side (mprotect), so that neither swap nor a dump nor a linear
// overrun of a neighbouring buffer reaches key bytes. Only key bytes are
// locked, not the process (mlockall would lock every heap page).
//
// A key value holds a pointer to a keyBytes handle on the heap, which
// points to a 32-byte slot of the arena. Copies of a key share the slot;
// when the last copy becomes unreachable, a cleanup zeroes the slot and
// returns it to the arena. So a key dropped from the cache is zeroed once
// no request is still using it, never while one is.

// keyBytes is the handle of one arena slot.
type keyBytes struct {
	b         *[KeySize]byte
	destroyed atomic.Bool // set by Destroy; the bytes are zero
}

// newKeyBytes returns a handle of a fresh, zeroed slot.
func newKeyBytes() *keyBytes {
	kb := &keyBytes{b: keyArena.alloc()}
	runtime.AddCleanup(kb, keyArena.release, kb.b)
	return kb
}

// zeroKey is what the zero value of a key reads.
var zeroKey [KeySize]byte

// bytes returns the key bytes, all zero for a nil handle.
func (kb *keyBytes) bytes() *[KeySize]byte {
	if kb == nil {
		return &zeroKey
	}
	return kb.b
}

// destroy zeroes the slot for every copy of the key. The slot itself is
// returned by the cleanup, once no copy can read it any more.
func (kb *keyBytes) destroy() {
	if kb != nil {
		kb.destroyed.Store(true)
		clear(kb.b[:])
	}
}

// chunkSlots is the number of 32-byte slots the arena adds at a time: one
// page on most systems.
const chunkSlots = 128

// arena hands out 32-byte slots of locked memory. The zero value is ready.
type arena struct {
	mu     sync.Mutex
	free   []*[KeySize]byte
	chunks int    // chunks mapped
	status Memory // what the chunks got
}

var keyArena arena

// Memory describes where key bytes are kept, for the server banner.
type Memory struct {
	Locked   bool   // every slot handed out so far is mlocked
	NoDump   bool   // and excluded from core dumps
	Guarded  bool   // and between inaccessible guard pages
	LockedKB int    // kB of memory locked for keys
	Slots    int    // slots in use (keys and HMAC keys not yet collected)
	Problem  string // why not Locked, NoDump or Guarded, if one is false
}

// LockedMemory reports how key bytes are kept. Before the first key is
// made it reports what the first chunk got, mapping it.
func LockedMemory() Memory {
	keyArena.mu.Lock()
	defer keyArena.mu.Unlock()
	if keyArena.chunks == 0 {
		keyArena.grow()
	}
	m := keyArena.status
	m.Slots = keyArena.chunks*chunkSlots - len(keyArena.free)
	return m
}

func (a *arena) alloc() *[KeySize]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.free) == 0 {
		a.grow()
	}
	p := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	return p
}

func (a *arena) release(p *[KeySize]byte) {
	clear(p[:])
	a.mu.Lock()
	a.free = append(a.free, p)
	a.mu.Unlock()
}

// grow adds a chunk of slots, locked if the system allows it, else from
// the Go heap (mapChunk says why in the status).
func (a *arena) grow() {
	mem, st := mapChunk(chunkSlots * KeySize)
	if a.chunks == 0 {
		a.status = st
	} else {
		a.status.Locked = a.status.Locked && st.Locked
		a.status.NoDump = a.status.NoDump && st.NoDump
		a.status.Guarded = a.status.Guarded && st.Guarded
		a.status.LockedKB += st.LockedKB
		if a.status.Problem == "" {
			a.status.Problem = st.Problem
		}
	}
	a.chunks++
	for i := 0; i+KeySize <= len(mem); i += KeySize {
		a.free = append(a.free, (*[KeySize]byte)(mem[i:i+KeySize]))
	}
}
