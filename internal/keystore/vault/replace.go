package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/api"
	"github.com/openkes/kes/internal/keystore"
)

var _ keystore.Replacer = (*Store)(nil)

// replacedField marks the data of a K/V v2 version that [Store.Replace]
// wrote. Key names cannot contain ':', so it never collides with the field
// named after the key. Get serves the latest version of a secret if it
// carries this field (or is version 1); otherwise version 1, as upstream.
const replacedField = "openkes:replaced"

// ErrNoCheckAndSet is matched (with errors.ErrUnsupported) by Replace on a
// K/V v1 engine, which has no check-and-set: a read-then-write could lose
// a concurrent change, so keys there cannot be rotated.
var ErrNoCheckAndSet = fmt.Errorf("vault: K/V v1 has no check-and-set: %w", errors.ErrUnsupported)

// Replace stores new under name if the value stored now is old (see
// [keystore.Replacer]), with a K/V v2 check-and-set write of a new version
// (option cas = the version read). The new version is marked, so this
// store serves it; upstream KES nodes sharing the engine go on reading
// version 1. The token's policy needs the "update" capability on the data
// path, which upstream's documented policy does not grant.
//
// On K/V v1 it returns an error matching [ErrNoCheckAndSet] and
// errors.ErrUnsupported, and changes nothing.
func (s *Store) Replace(ctx context.Context, name string, old, new []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("vault: replace key %q: %w", name, err)
	}
	if !s.cfg.v2 {
		return fmt.Errorf("vault: replace key %q: %w", name, ErrNoCheckAndSet)
	}
	stored := encodeValue(new)
	if s.cfg.Transit != nil {
		err := s.do(ctx, func(c *api.Client) (err error) {
			stored, err = s.encrypt(ctx, c, new)
			return err
		})
		if err != nil {
			return fmt.Errorf("vault: replace key %q: %w", name, err)
		}
	}
	wrote := false
	err := s.do(ctx, func(c *api.Client) error {
		v, version, err := s.readV2(ctx, c, name)
		if err != nil {
			return err
		}
		if wrote && subtle.ConstantTimeCompare([]byte(v), []byte(stored)) == 1 {
			// A write repeated after its answer was lost in a leader
			// election (see [Store.do]) finds its own value.
			return nil
		}
		current, err := s.open(ctx, c, v)
		if err != nil {
			return err
		}
		same := bytes.Equal(current, old)
		clear(current)
		if !same {
			return keystore.ErrChanged
		}
		data := map[string]any{
			"options": map[string]any{"cas": version},
			"data":    map[string]any{name: stored, replacedField: "1"},
		}
		wrote = true
		if _, err := c.Logical().WriteWithContext(ctx, s.dataPath(name), data); err != nil {
			if isCASMismatch(err) {
				return keystore.ErrChanged
			}
			return s.classify(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: replace key %q: %w", name, err)
	}
	return nil
}

// readV2 returns the stored string of name on K/V v2 (still
// transit-wrapped) and the latest version of the secret, the one a
// check-and-set write must name. The string is the latest version's if
// that is version 1 or was written by Replace, else version 1's.
func (s *Store) readV2(ctx context.Context, c *api.Client, name string) (string, int64, error) {
	sec, err := c.Logical().ReadWithContext(ctx, s.dataPath(name))
	if err != nil {
		return "", 0, s.classify(err)
	}
	if sec == nil || sec.Data == nil {
		return "", 0, keystore.ErrNotFound
	}
	md, _ := sec.Data["metadata"].(map[string]any)
	version, err := jsonInt(md["version"])
	if err != nil {
		return "", 0, errors.New("stored secret has no version")
	}
	d, _ := sec.Data["data"].(map[string]any)
	if _, replaced := d[replacedField]; version != 1 && !replaced {
		v, err := s.readData(ctx, c, name, "1") // as upstream
		return v, version, err
	}
	if d == nil {
		// The latest version is deleted: so is the key, whose
		// versions all go at once (Delete removes the metadata).
		return "", 0, keystore.ErrNotFound
	}
	v, err := field(d, name)
	return v, version, err
}

// readData returns the field of name in the given version of its K/V v2
// secret.
func (s *Store) readData(ctx context.Context, c *api.Client, name, version string) (string, error) {
	sec, err := c.Logical().ReadWithDataWithContext(ctx, s.dataPath(name), map[string][]string{"version": {version}})
	if err != nil {
		return "", s.classify(err)
	}
	if sec == nil || sec.Data == nil {
		return "", keystore.ErrNotFound
	}
	d, ok := sec.Data["data"].(map[string]any)
	if !ok || d == nil {
		return "", keystore.ErrNotFound // deleted or destroyed
	}
	return field(d, name)
}

// field returns the string field name of a secret's data.
func field(data map[string]any, name string) (string, error) {
	raw, ok := data[name]
	if !ok {
		return "", keystore.ErrNotFound
	}
	v, ok := raw.(string)
	if !ok {
		return "", errors.New("stored value is not a string")
	}
	return v, nil
}

// open returns the value of a stored string: transit-decrypted or decoded.
func (s *Store) open(ctx context.Context, c *api.Client, v string) ([]byte, error) {
	if isTransitCiphertext(v) {
		if s.cfg.Transit == nil {
			return nil, errors.New("value is transit-encrypted but no transit key is configured")
		}
		return s.decrypt(ctx, c, v)
	}
	return decodeValue(v)
}

func jsonInt(v any) (int64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Int64()
	case float64:
		return int64(n), nil
	}
	return 0, errors.New("not a number")
}
