//go:build !linux

package fs

import "os"

// syncsFS tells that this system has no syncfs(2): each writer fsyncs its
// own temporary file, and the shared sync is a directory fsync.
const syncsFS = false

// syncAll fsyncs the directory dir so that the links, renames and
// unlinks made in it survive a crash; it opens dir again, as the writers
// do, instead of using d. The data of the files was fsync'ed by their
// writers (see writeTemp).
func syncAll(_ *os.File, dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
