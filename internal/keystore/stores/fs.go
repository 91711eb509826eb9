package stores

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
)

// FS is the fs keystore (config.md §9.1), meant for testing: one file per
// key in a directory.
type FS struct {
	// Path is the directory holding the keys. Never empty once decoded.
	Path string
}

func decodeFS(d *config.Decoder, path string, key, val *yaml.Node) (config.KeyStore, error) {
	c := new(FS)
	if err := d.Mapping(val, path, map[string]config.Field{"path": d.Str(&c.Path)}); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, d.Failf(key, "kesconf: invalid fs keystore: no path specified")
	}
	return c, nil
}

// Connect opens (creating if needed) the directory.
func (c *FS) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	s, err := fs.New(c.Path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Filesystem: <path>".
func (c *FS) Banner() string { return "Filesystem: " + c.Path }

// String returns the banner line.
func (c *FS) String() string { return c.Banner() }

// HasSecrets reports false: a path is no credential.
func (c *FS) HasSecrets() bool { return false }
