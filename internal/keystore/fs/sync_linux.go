package fs

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// syncsFS tells that the shared sync is a syncfs(2) of the whole file
// system: a writer need not fsync its own temporary file, since the next
// shared sync writes its data too (see Store.Create).
const syncsFS = true

// syncAll flushes every dirty page and inode of the file system that holds
// the directory d: the data of the temporary files written before it
// began, and every link, rename and unlink made in the directory.
//
// syncfs(2) reports a writeback error of the file system that happened
// since d was opened (the kernel keeps a per-file-system error sequence,
// sampled when a file is opened) to the first syncfs on d after it. That
// is why the Store keeps d open from New to Close instead of opening the
// directory for each sync: a page that failed to write back between an
// open and a sync would otherwise go unreported, and a Create would be
// acknowledged though its record never reached the disk.
//
// The writers open the directory by its path dir for each call, so they
// write to whatever is mounted there now. If that is another file system
// than d's (one was mounted over the directory after New), a syncfs of d
// would not make their changes durable: syncAll then fails.
func syncAll(d *os.File, dir string) error {
	if err := syncfs(d); err != nil {
		return err
	}
	now, err1 := os.Stat(dir)
	was, err2 := d.Stat()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if now.Sys().(*syscall.Stat_t).Dev != was.Sys().(*syscall.Stat_t).Dev {
		return errors.New("syncfs: the directory is on another file system than when the store opened it; restart the server")
	}
	return nil
}

func syncfs(d *os.File) error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Syncfs(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: d.Name(), Err: serr}
	}
	return nil
}
