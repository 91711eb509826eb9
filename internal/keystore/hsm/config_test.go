package hsm_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/keystore/hsm"
)

// No way of printing a Config shows its PIN.
func TestConfigRedacted(t *testing.T) {
	c := hsm.Config{Module: "/lib/p11.so", Token: "kes", PIN: "pin-4711", Key: "kes-wrap"}
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("hsm", "config", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", &c, c, c, c), log.String()} {
		if strings.Contains(s, c.PIN) {
			t.Errorf("%q shows the PIN", s)
		}
	}
	if got, want := c.String(), `PKCS#11 /lib/p11.so, token "kes", key "kes-wrap" (AES-256-GCM)`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
