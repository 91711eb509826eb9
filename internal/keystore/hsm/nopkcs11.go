//go:build !cgo

package hsm

import (
	"context"
	"log/slog"
)

// openToken fails: without cgo no PKCS#11 library can be loaded.
func openToken(context.Context, *Config, *slog.Logger) (cipher, error) { return nil, ErrNoPKCS11 }
