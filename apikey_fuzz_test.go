package kes_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/kes"
)

// FuzzParseAPIKey checks that ParseAPIKey never panics, that every key it
// accepts survives Secret and ParseAPIKey unchanged, and that neither the
// key's printed forms nor a parse error repeat the secret text.
func FuzzParseAPIKey(f *testing.F) {
	for _, s := range []string{
		"kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
		"AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
		"kes:v1:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
		"kes:v1:AAEC", "kes:v1:", "kes:v1:!!", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := kes.ParseAPIKey(s)
		if err != nil {
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q repeats the input", err)
			}
			return
		}
		secret := k.Secret()
		k2, err := kes.ParseAPIKey(secret)
		if err != nil || !k2.Equal(k) || k2.Identity() != k.Identity() {
			t.Fatalf("%q: round trip through %q: %v", s, secret, err)
		}
		seed := k.Private().Seed()
		goSyntax := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", seed), "[]byte{"), "}")
		forms := []string{strings.TrimPrefix(secret, "kes:v1:"), hex.EncodeToString(seed), goSyntax}
		for _, printed := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s %x", k, k, k, k, k)} {
			for _, form := range forms {
				if strings.Contains(printed, form) {
					t.Fatalf("printed form %q holds the secret", printed)
				}
			}
		}
	})
}
