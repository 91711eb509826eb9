//go:build !linux

package fs

import "os"

// syncsFS tells that this system has no syncfs(2): each writer fsyncs its
// own temporary file, and the shared sync is a directory fsync.
const syncsFS = false

// syncAll fsyncs the directory d so that the links, renames and unlinks
// made in it survive a crash. The data of the files was fsync'ed by their
// writers (see writeTemp).
func syncAll(d *os.File) error { return d.Sync() }
