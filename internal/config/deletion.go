package config

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/names"
)

// DefaultRetention is how long a deleted key stays recoverable when the
// file has no key_deletion.retention: long enough to notice a mistake over
// a weekend, short enough that deleted key material does not linger for a
// month (docs/key-deletion.md).
const DefaultRetention = 7 * 24 * time.Hour

// KeyDeletion is the key_deletion section, an OpenKES extension
// (docs/key-deletion.md).
type KeyDeletion struct {
	// Retention is how long a deleted key stays recoverable (soft
	// deletion) before it is purged. Zero means keys are deleted at once,
	// as upstream KES deletes them. Parse sets DefaultRetention when the
	// file has no key_deletion.retention; "off" and 0 are zero.
	Retention time.Duration

	// Protect lists key name patterns (a name, or a prefix ending in '*')
	// of keys that no API call deletes. Nil means none.
	Protect []string
}

// keyDeletion decodes the key_deletion section.
func (d *Decoder) keyDeletion(r *rawFile) Field {
	return d.Sub(map[string]Field{
		"retention": func(path string, k, v *yaml.Node) error {
			r.retentionSet = true
			s, err := d.scalar(v, path, true)
			if err != nil {
				return err
			}
			if strings.EqualFold(strings.TrimSpace(s), "off") {
				r.KeyDeletion.Retention = 0
				return nil
			}
			return d.NonNegative(&r.KeyDeletion.Retention, "kesconf: invalid key deletion retention '%v'")(path, k, v)
		},
		"protect": func(path string, _, v *yaml.Node) error {
			if v = resolve(v); isNull(v) {
				return nil
			}
			if v.Kind != yaml.SequenceNode {
				return d.Fail(v, &TypeError{Key: path, Want: "a sequence", Got: kindName(v)})
			}
			if err := d.visit(v, len(v.Content)); err != nil {
				return err
			}
			for _, item := range v.Content {
				s, err := d.scalar(item, path, false)
				if err != nil {
					return err
				}
				if s == "" || !names.ValidPattern(s) {
					return d.Failf(item, "kesconf: invalid key deletion protect pattern '%s': want a key name or a prefix ending in '*'", s)
				}
				r.KeyDeletion.Protect = append(r.KeyDeletion.Protect, s)
			}
			return nil
		},
	})
}
