//go:build unix

package fs

import (
	"errors"
	iofs "io/fs"
	"os"
	"sync"
	"syscall"
)

// tempLocks tells that lockTemp locks, so the sweep goes by locks, not age.
const tempLocks = true

// linkCount returns the number of names of the file fi describes.
func linkCount(fi iofs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}

// lockTemp takes an exclusive flock(2) on the new temporary file f, held
// until f is closed or its process dies. It tells the sweep of another
// process that a Create or Replace still owns the file.
func lockTemp(f *os.File) error {
	return flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
}

// unlocked reports whether no process holds the lock of lockTemp on f
// (and takes it, until f is closed). known is false where that cannot be
// told.
func unlocked(f *os.File) (free, known bool) {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, true
	}
	return err == nil, err == nil
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// lockDir takes an exclusive flock(2) on the directory of root, which
// Replace holds from its compare to its rename: processes sharing the
// directory (several servers on one volume) then compare and swap one at
// a time. The lock ends with the returned func, or when the process dies.
func lockDir(root *os.Root) (unlock func(), err error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	if err := flock(d, syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, err
	}
	return sync.OnceFunc(func() { d.Close() }), nil
}
