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
