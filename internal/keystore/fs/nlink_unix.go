//go:build unix

package fs

import (
	iofs "io/fs"
	"syscall"
)

// linkCount returns the number of names of the file fi describes.
func linkCount(fi iofs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}
