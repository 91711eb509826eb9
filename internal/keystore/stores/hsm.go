package stores

import (
	"context"
	"log/slog"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/hsm"
)

// HSM is the top-level hsm section (an OpenKES extension, docs/hsm.md):
// every record of the key store is wrapped by a key in an HSM reached
// through PKCS#11. It holds a secret (Config.PIN): never log Config.
type HSM struct {
	Config hsm.Config
}

// DecodeHSM decodes the hsm section, for config.Schema.HSM:
//
//	hsm:
//	  module: /usr/lib/softhsm/libsofthsm2.so
//	  token: kes            # or slot: 0
//	  pin: ${KES_HSM_PIN}   # or pin_file: /etc/kes/hsm.pin
//	  key: kes-wrap
//	  sessions: 8           # optional
func DecodeHSM(d *config.Decoder, path string, key, val *yaml.Node) (config.Wrapper, error) {
	var c hsm.Config
	var slot, sessions string
	var slotNode, sessionsNode *yaml.Node
	err := d.Mapping(val, path, map[string]config.Field{
		"module":   d.Str(&c.Module),
		"token":    d.Str(&c.Token),
		"slot":     nodeStr(d, &slot, &slotNode),
		"pin":      d.Str(&c.PIN),
		"pin_file": d.Str(&c.PINFile),
		"key":      d.Str(&c.Key),
		"sessions": nodeStr(d, &sessions, &sessionsNode),
	})
	if err != nil {
		return nil, err
	}
	const prefix = "kesconf: invalid hsm section: "
	if slot != "" {
		n, err := strconv.ParseUint(slot, 10, 32)
		if err != nil {
			return nil, d.Failf(slotNode, "%sslot '%s' is not a slot number", prefix, slot)
		}
		u := uint(n)
		c.Slot = &u
	}
	if sessions != "" {
		n, err := strconv.Atoi(sessions)
		if err != nil || n <= 0 {
			return nil, d.Failf(sessionsNode, "%ssessions '%s' is not a positive number", prefix, sessions)
		}
		c.Sessions = n
	}
	if err := c.Check(); err != nil {
		return nil, d.Failf(key, "%s%v", prefix, err)
	}
	return &HSM{Config: c}, nil
}

// nodeStr is d.Str that also keeps the value's node, for errors about it.
func nodeStr(d *config.Decoder, dst *string, node **yaml.Node) config.Field {
	str := d.Str(dst)
	return func(path string, k, v *yaml.Node) error {
		*node = v
		return str(path, k, v)
	}
}

// Wrap connects to the HSM and returns store with its records wrapped.
func (h *HSM) Wrap(ctx context.Context, store keystore.Store, logger *slog.Logger) (keystore.Store, error) {
	c := h.Config
	return hsm.Wrap(ctx, store, &c, logger)
}

// Banner returns the HSM line of the banner: module, token and key label.
func (h *HSM) Banner() string { return h.Config.String() }

// String returns the banner line, so that printing the section never
// prints the PIN.
func (h *HSM) String() string { return h.Banner() }

// HasSecrets reports whether the file holds the PIN.
func (h *HSM) HasSecrets() bool { return h.Config.PIN != "" }
