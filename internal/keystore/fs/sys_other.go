//go:build !unix

package fs

import (
	iofs "io/fs"
	"os"
)

// tempLocks tells that lockTemp does not lock here.
const tempLocks = false

// linkCount reports that the link count is unknown on this system: the
// sweep in New then goes by age alone.
func linkCount(iofs.FileInfo) (uint64, bool) { return 0, false }

// lockTemp does nothing: this system has no flock(2), so the sweep goes
// by age alone.
func lockTemp(*os.File) error { return nil }

// unlocked reports that it cannot tell whether a temporary file is in use.
func unlocked(*os.File) (free, known bool) { return false, false }

// lockDir does nothing: without flock(2), Replace excludes the callers of
// one Store only.
func lockDir(*os.Root) (unlock func(), err error) { return func() {}, nil }
