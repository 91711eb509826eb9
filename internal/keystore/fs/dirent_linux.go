//go:build linux

package fs

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
)

// readNames calls add with the name of every regular file of the directory
// d (and of every entry whose type the file system does not report, which
// isRegular then decides), reading it with getdents64 into one reused
// buffer: no allocation per entry, so a pass over a million names leaves no
// garbage for the collector to grow the heap for. ctx is checked between
// batches.
func readNames(ctx context.Context, d *os.File, isRegular func(name string) bool, add func(name []byte)) error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = syscall.Getdents(int(fd), buf)
				if rerr != syscall.EINTR {
					return true
				}
			}
		}); err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("getdents: %w", rerr)
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off i64, reclen u16, type u8,
		// name (NUL-terminated).
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("getdents: bad record length %d", reclen)
			}
			typ, name := b[18], b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			switch typ {
			case syscall.DT_REG:
				add(name)
			case syscall.DT_UNKNOWN:
				if isRegular(string(name)) {
					add(name)
				}
			}
			b = b[reclen:]
		}
	}
}
