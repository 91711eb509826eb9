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
	// closes it. Backends whose store is not part of this release return a
	// [*NotBuiltError]. Stores that log (token renewals, reconnects) log
	// to logger; nil means slog.Default().
	Connect(ctx context.Context, logger *slog.Logger) (keystore.Store, error)

	// Banner returns the KMS line of the startup banner, e.g.
	// "Filesystem: /var/lib/kes". It never contains a secret.
	Banner() string
}

// backend is one keystore of the table below.
type backend struct {
	// name is the dotted YAML path below "keystore:"; for nested backends
	// ("aws.secretsmanager") only the inner mapping counts as a keystore.
	name string
	// decode validates the section and returns its KeyStore, whose
	// Connect method is the backend's constructor. key is the section's
	// key node (for errors about missing fields), val its value.
	decode func(d *decoder, path string, key, val *yaml.Node) (KeyStore, error)
}

// backends lists every keystore the configuration file may name. Adding a
// store means one line here plus the file holding its decode function.
var backends = []backend{
	{"fs", decodeFS},
	{"vault", decodeVault},
	{"fortanix.sdkms", decodeFortanix},
	{"gemalto.keysecure", decodeKeySecure},
	{"gcp.secretmanager", decodeGCP},
	{"aws.secretsmanager", decodeAWS},
	{"azure.keyvault", decodeAzure},
	{"entrust.keycontrol", decodeEntrust},
}

// removedBackends are keystores upstream once had (config.md §12).
var removedBackends = []string{"generic", "kes"}

// keystoreEntry is one backend section found in the file.
type keystoreEntry struct {
	backend  backend
	path     string
	key, val *yaml.Node
}

// keystore returns the field decoding the keystore section (also used for
// the legacy keys-as-keystore mapping). It only records which backends are
// present; validateKeyStore decodes the one that is.
func (d *decoder) keystore(r *rawFile) field {
	return func(path string, k, v *yaml.Node) error {
		if r.keystoreNode == nil {
			r.keystoreNode = k
		}
		fields := make(map[string]field)
		groups := make(map[string]map[string]field)
		for _, b := range backends {
			collect := func(p string, k, v *yaml.Node) error {
				r.keystores = append(r.keystores, keystoreEntry{backend: b, path: p, key: k, val: v})
				return nil
			}
			outer, inner, nested := strings.Cut(b.name, ".")
			if !nested {
				fields[outer] = collect
				continue
			}
			if groups[outer] == nil {
				groups[outer] = make(map[string]field)
				fields[outer] = d.sub(groups[outer])
			}
			groups[outer][inner] = collect
		}
		for _, name := range removedBackends {
			fields[name] = func(_ string, k, _ *yaml.Node) error {
				return d.fail(k, &RemovedKeyStoreError{Name: name})
			}
		}
		return d.mapping(v, path, fields)
	}
}

// validateKeyStore requires exactly one backend and decodes it.
func (d *decoder) validateKeyStore(r *rawFile) (KeyStore, error) {
	switch len(r.keystores) {
	case 0:
		n := r.keystoreNode
		if n == nil {
			n = r.root
		}
		return nil, d.fail(n, ErrNoKeyStore)
	case 1:
		e := r.keystores[0]
		return e.backend.decode(d, e.path, e.key, e.val)
	default:
		return nil, d.fail(r.keystores[1].key, ErrMultipleKeyStores)
	}
}

// notBuilt is the Connect result of backends not part of this release.
func notBuilt(name string) (keystore.Store, error) {
	return nil, &NotBuiltError{Name: name}
}

// required is a value that must not be empty, and the message if it is.
type required struct {
	value, msg string
}

// requireAll returns an error at n for the first empty value.
func requireAll(d *decoder, n *yaml.Node, prefix string, checks ...required) error {
	for _, c := range checks {
		if c.value == "" {
			return d.failf(n, "%s%s", prefix, c.msg)
		}
	}
	return nil
}

// presence returns a field that decodes a sub-mapping and records its key
// node in dst if its value is not null.
func (d *decoder) presence(dst **yaml.Node, fields map[string]field) field {
	return func(p string, k, v *yaml.Node) error {
		if !isNull(v) {
			*dst = k
		}
		return d.mapping(v, p, fields)
	}
}
