//go:build !linux

package fs

import (
	"context"
	"errors"
	"io"
	"os"
)

// readNames calls add with the name of every regular file of the directory
// d, a batch of entries at a time, checking ctx between batches.
func readNames(ctx context.Context, d *os.File, _ func(name string) bool, add func(name []byte)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			if e.Type().IsRegular() {
				add([]byte(e.Name()))
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
