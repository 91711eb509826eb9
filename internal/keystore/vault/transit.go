package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path"

	"github.com/hashicorp/vault/api"
)

// isTransitCiphertext reports whether a stored value is a transit
// ciphertext ("vault:v<version>:…"). Key records never start this way.
func isTransitCiphertext(v string) bool {
	const p = "vault:v"
	if len(v) <= len(p) || v[:len(p)] != p {
		return false
	}
	i := len(p)
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	return i > len(p) && i < len(v) && v[i] == ':'
}

func (s *Store) encrypt(ctx context.Context, c *api.Client, value []byte) (string, error) {
	p := path.Join(s.cfg.transit.Engine, "encrypt", s.cfg.transit.Key)
	sec, err := c.Logical().WriteWithContext(ctx, p, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(value),
	})
	if err != nil {
		return "", fmt.Errorf("transit encrypt: %w", s.classify(err))
	}
	if sec == nil {
		return "", errors.New("transit encrypt: empty response")
	}
	ct, ok := sec.Data["ciphertext"].(string)
	if !ok || !isTransitCiphertext(ct) {
		return "", errors.New("transit encrypt: response has no ciphertext")
	}
	return ct, nil
}

func (s *Store) decrypt(ctx context.Context, c *api.Client, ciphertext string) ([]byte, error) {
	p := path.Join(s.cfg.transit.Engine, "decrypt", s.cfg.transit.Key)
	sec, err := c.Logical().WriteWithContext(ctx, p, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		return nil, fmt.Errorf("transit decrypt: %w", s.classify(err))
	}
	if sec == nil {
		return nil, errors.New("transit decrypt: empty response")
	}
	pt, ok := sec.Data["plaintext"].(string)
	if !ok {
		return nil, errors.New("transit decrypt: response has no plaintext")
	}
	b, err := base64.StdEncoding.DecodeString(pt)
	if err != nil {
		return nil, errors.New("transit decrypt: plaintext is not base64")
	}
	return b, nil
}
