package kes

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// CreateKey creates a new key called name at the server. It returns
// [ErrKeyExists] if the key exists already.
func (c *Client) CreateKey(ctx context.Context, name string) error {
	// POST, not PUT: servers before 2023-11 accept only POST, newer ones both.
	return c.call(ctx, request{method: http.MethodPost, path: []string{"v1", "key", "create", name}}, nil)
}

// ImportKey creates a key called name from the given 32 key bytes for the
// cipher [AES256] or [ChaCha20]. It returns [ErrKeyExists] if the key
// exists already.
func (c *Client) ImportKey(ctx context.Context, name string, key []byte, cipher string) error {
	body := jsonBody(ImportKeyRequest{Key: key, Cipher: cipher})
	defer clear(body)
	return c.call(ctx, request{method: http.MethodPost, path: []string{"v1", "key", "import", name}, body: body}, nil)
}

// DescribeKey returns metadata of the key called name, or [ErrKeyNotFound].
func (c *Client) DescribeKey(ctx context.Context, name string) (*DescribeKeyResponse, error) {
	var v DescribeKeyResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "key", "describe", name}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DeleteKey deletes the key called name. Depending on the server's key
// store, deleting a missing key returns [ErrKeyNotFound] or succeeds.
func (c *Client) DeleteKey(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"v1", "key", "delete", name}}, nil)
}

// PurgeKey deletes the key called name and every soft-deleted copy of it
// at once, without the chance to restore it: what DeleteKey does on
// upstream servers. It returns [ErrKeyNotFound] if neither exists and
// [ErrKeyProtected] if the server protects the key. OpenKES extension.
func (c *Client) PurgeKey(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"v1", "key", "purge", name}}, nil)
}

// RestoreKey makes the soft-deleted key called name live again: the copy
// deleted at deletedAt, or the newest if deletedAt is zero. It returns
// [ErrKeyNotDeleted] if there is no such copy and [ErrKeyLive] if a key
// called name exists. OpenKES extension.
func (c *Client) RestoreKey(ctx context.Context, name string, deletedAt time.Time) (*DeletedKey, error) {
	req := request{method: http.MethodPut, path: []string{"v1", "key", "restore", name}}
	if !deletedAt.IsZero() {
		req.query = url.Values{"deleted_at": {deletedAt.UTC().Format(time.RFC3339)}}
	}
	var v DeletedKey
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DescribeDeletedKey returns the newest soft-deleted copy of the key
// called name, or [ErrKeyNotDeleted]. OpenKES extension.
func (c *Client) DescribeDeletedKey(ctx context.Context, name string) (*DeletedKey, error) {
	var v DeletedKey
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "key", "deleted", "describe", name}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListDeletedKeys returns the soft-deleted keys whose names start with
// prefix (a trailing '*' is ignored), by name and then deletion time.
// OpenKES extension.
func (c *Client) ListDeletedKeys(ctx context.Context, prefix string) ([]DeletedKey, error) {
	var v ListDeletedKeysResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "key", "deleted", "list", prefix}}, &v); err != nil {
		return nil, err
	}
	return v.Keys, nil
}

// GenerateKey returns a new 32-byte data key and that key encrypted with the
// key called name, bound to the associated data context (which may be nil).
// Decrypt the ciphertext later with [Client.Decrypt] and the same context.
func (c *Client) GenerateKey(ctx context.Context, name string, context []byte) (*GenerateKeyResponse, error) {
	var v GenerateKeyResponse
	req := request{method: http.MethodPost, path: []string{"v1", "key", "generate", name}, body: jsonBody(GenerateKeyRequest{Context: context})}
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Encrypt encrypts plaintext with the key called name, bound to the
// associated data context (which may be nil).
func (c *Client) Encrypt(ctx context.Context, name string, plaintext, context []byte) ([]byte, error) {
	body := jsonBody(EncryptKeyRequest{Plaintext: plaintext, Context: context})
	defer clear(body)
	var v EncryptKeyResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: []string{"v1", "key", "encrypt", name}, body: body}, &v); err != nil {
		return nil, err
	}
	return v.Ciphertext, nil
}

// Decrypt decrypts ciphertext with the key called name and the associated
// data context it was encrypted with. It returns [ErrDecrypt] if the
// ciphertext is not authentic or the context differs.
func (c *Client) Decrypt(ctx context.Context, name string, ciphertext, context []byte) ([]byte, error) {
	var v DecryptKeyResponse
	req := request{method: http.MethodPost, path: []string{"v1", "key", "decrypt", name}, body: jsonBody(DecryptKeyRequest{Ciphertext: ciphertext, Context: context})}
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return v.Plaintext, nil
}

// HMAC returns the HMAC-SHA-256 of message under the HMAC key of the key
// called name. Keys stored before 2024 have no HMAC key: for them it
// returns [ErrNoHMAC].
func (c *Client) HMAC(ctx context.Context, name string, message []byte) ([]byte, error) {
	var v HMACResponse
	req := request{method: http.MethodPut, path: []string{"v1", "key", "hmac", name}, body: jsonBody(HMACRequest{Message: message})}
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return v.Sum, nil
}

// ListKeys returns an iterator over the names of the keys that start with
// prefix, in sorted order. A trailing '*' of prefix is ignored, so "" and
// "*" list all keys. The iterator asks for the next page while the server
// reports more names (continue_at). It yields at most one error, as the
// last element.
func (c *Client) ListKeys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return listNames(ctx, c, "key", prefix, func(r *ListKeysResponse) ([]string, string) {
		return r.Names, r.ContinueAt
	})
}
