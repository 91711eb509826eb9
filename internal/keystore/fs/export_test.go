package fs

import "time"

// Test hooks: the lock a writer holds on its temporary file, and whether
// this system has it.
var LockTemp = lockTemp

const TempLocks = tempLocks

// ExpireIndex lets the next List read the directory again if it changed,
// as it would once the rate limit of the passes allows.
func (s *Store) ExpireIndex() {
	s.idx.scanMu.Lock()
	s.idx.scanned = time.Time{}
	s.idx.scanMu.Unlock()
}

// SetHooks sets the test hooks of s before its first call: sync runs each
// shared sync (and may fail it), step is called after each step of a
// Create ("written", "durable", "linked"). Either may be nil.
func (s *Store) SetHooks(sync func(sync func() error) error, step func(step, name string)) {
	s.hooks = &testHooks{sync: sync, step: step}
}
