package config

import (
	"context"
	"log/slog"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
)

// FSConfig is the fs keystore (config.md §9.1), meant for testing: one
// file per key in a directory.
type FSConfig struct {
	// Path is the directory holding the keys. Never empty after Parse.
	Path string
}

func decodeFS(d *decoder, path string, key, val *yaml.Node) (KeyStore, error) {
	c := new(FSConfig)
	if err := d.mapping(val, path, map[string]field{"path": d.str(&c.Path)}); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, d.failf(key, "kesconf: invalid fs keystore: no path specified")
	}
	return c, nil
}

// Connect opens (creating if needed) the directory.
func (c *FSConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	s, err := fs.New(c.Path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Banner returns "Filesystem: <path>".
func (c *FSConfig) Banner() string { return "Filesystem: " + c.Path }

// String returns the banner line, so that printing the configuration never
// prints a credential.
func (c *FSConfig) String() string { return c.Banner() }
