package hsm_test

import (
	"bytes"
	"testing"

	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/hsm"
)

// FuzzDecodeRecord: the record parser never panics, and what it accepts
// encodes back to the same record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(crypto.HSMRecordPrefix + "AQ=="))
	f.Add(hsm.EncodeRecord(make([]byte, 12), make([]byte, 40)))
	f.Fuzz(func(t *testing.T, rec []byte) {
		iv, sealed, err := hsm.DecodeRecord(rec)
		if err != nil {
			return
		}
		if got := hsm.EncodeRecord(iv, sealed); !bytes.Equal(got, rec) {
			t.Errorf("EncodeRecord(DecodeRecord(%q)) = %q", rec, got)
		}
	})
}
