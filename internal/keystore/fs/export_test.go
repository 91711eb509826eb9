package fs

// Test hooks: the lock a writer holds on its temporary file, and whether
// this system has it.
var LockTemp = lockTemp

const TempLocks = tempLocks
