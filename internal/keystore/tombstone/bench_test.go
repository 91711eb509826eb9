package tombstone_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

// BenchmarkDelete measures a key delete on the fs store: upstream's
// immediate delete (one store call) against a soft delete (a rename of
// the key's file to the tombstone name). Each
// iteration creates the key first; the create is timed too.
func BenchmarkDelete(b *testing.B) {
	for _, soft := range []bool{false, true} {
		name := "immediate"
		if soft {
			name = "soft"
		}
		b.Run(name, func(b *testing.B) {
			s, err := fs.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := b.Context()
			record := make([]byte, 256)
			at := time.Now()
			i := 0
			for b.Loop() {
				key := fmt.Sprint("key-", i)
				i++
				if err := s.Create(ctx, key, record); err != nil {
					b.Fatal(err)
				}
				if soft {
					_, err = tombstone.Delete(ctx, tombstone.Raw(s), key, at)
				} else {
					err = s.Delete(ctx, key)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
