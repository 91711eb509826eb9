package config

import (
	"context"
	"log/slog"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/keystore"
)

// KeyStore is a decoded and validated keystore section (config.md §9).
type KeyStore interface {
	// Connect opens the store. The caller owns the returned store and
	// closes it. Stores that log (token renewals, reconnects) log to
	// logger; nil means slog.Default().
	Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error)

	// Banner returns the KMS line of the startup banner, e.g.
	// "Filesystem: /var/lib/kes". It never contains a secret.
	Banner() string

	// HasSecrets reports whether the section holds a credential that a
	// reader of the file could use (see [HasSecrets]).
	HasSecrets() bool
}

// Wrapper is a decoded and validated hsm section: a layer that keeps the
// records of any key store wrapped by a key in an HSM (docs/hsm.md).
type Wrapper interface {
	// Wrap returns the store whose records are wrapped. It takes
	// ownership of store: the returned store closes it, and it is closed
	// if Wrap fails. logger is as for [KeyStore.Connect].
	Wrap(ctx context.Context, store keystore.Store, logger *slog.Logger) (keystore.Store, error)

	// Banner returns the HSM line of the startup banner. It never
	// contains a secret.
	Banner() string

	// HasSecrets reports whether the section holds a credential (a PIN).
	HasSecrets() bool
}

// Backend is one key store a configuration file may name below
// "keystore:". The table of them is not in this package (it would import
// every store and its vendor SDK): the caller passes it to [Parse] in a
// [Schema] (internal/keystore/stores.All).
type Backend struct {
	// Name is the dotted YAML path below "keystore:", e.g. "fs" or
	// "aws.secretsmanager". For a nested name only the inner mapping
	// counts as a key store (config.md §9).
	Name string

	// Decode decodes and validates the section with d and returns it.
	// path is the section's dotted path, key its key node (for errors
	// about missing fields) and val its value. Decode fails through d
	// ([Decoder.Fail]), so that its errors carry file:line.
	Decode func(d *Decoder, path string, key, val *yaml.Node) (KeyStore, error)
}

// removedBackends are keystores upstream once had (config.md §12).
var removedBackends = []string{"generic", "kes"}

// keystoreEntry is one backend section found in the file.
type keystoreEntry struct {
	backend  Backend
	path     string
	key, val *yaml.Node
}

// keystore returns the field decoding the keystore section (also used for
// the legacy keys-as-keystore mapping). It only records which backends are
// present; validateKeyStore decodes the one that is.
func (d *Decoder) keystore(r *rawFile) Field {
	return func(path string, k, v *yaml.Node) error {
		if r.keystoreNode == nil {
			r.keystoreNode = k
		}
		fields := make(map[string]Field)
		groups := make(map[string]map[string]Field)
		for _, b := range d.schema.KeyStores {
			collect := func(p string, k, v *yaml.Node) error {
				r.keystores = append(r.keystores, keystoreEntry{backend: b, path: p, key: k, val: v})
				return nil
			}
			outer, inner, nested := strings.Cut(b.Name, ".")
			if !nested {
				fields[outer] = collect
				continue
			}
			if groups[outer] == nil {
				groups[outer] = make(map[string]Field)
				fields[outer] = d.Sub(groups[outer])
			}
			groups[outer][inner] = collect
		}
		for _, name := range removedBackends {
			fields[name] = func(_ string, k, _ *yaml.Node) error {
				return d.Fail(k, &RemovedKeyStoreError{Name: name})
			}
		}
		return d.Mapping(v, path, fields)
	}
}

// validateKeyStore requires exactly one backend and decodes it.
func (d *Decoder) validateKeyStore(r *rawFile) (KeyStore, error) {
	switch len(r.keystores) {
	case 0:
		n := r.keystoreNode
		if n == nil {
			n = r.root
		}
		return nil, d.Fail(n, ErrNoKeyStore)
	case 1:
		e := r.keystores[0]
		return e.backend.Decode(d, e.path, e.key, e.val)
	default:
		return nil, d.Fail(r.keystores[1].key, ErrMultipleKeyStores)
	}
}
