package kes

import (
	"context"
	"net/http"
	"strconv"
)

// Key versions, rotation and re-wrap are OpenKES extensions
// (docs/key-rotation.md); upstream KES servers answer them with 404.

// RotateKey adds a new version to the key called name and makes it the
// version that encrypts; older versions keep decrypting. It returns the
// new version's number, [ErrKeyNotFound], or [ErrRotateUnsupported] if the
// server's key store cannot rotate.
func (c *Client) RotateKey(ctx context.Context, name string) (int, error) {
	var v RotateKeyResponse
	if err := c.call(ctx, request{method: http.MethodPut, path: []string{"v1", "key", "rotate", name}}, &v); err != nil {
		return 0, err
	}
	return v.Version, nil
}

// ListKeyVersions returns the versions of the key called name, ascending.
// A key never rotated has one version, 1.
func (c *Client) ListKeyVersions(ctx context.Context, name string) (*ListKeyVersionsResponse, error) {
	var v ListKeyVersionsResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "key", "versions", name}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DisableKeyVersion stops version of the key called name from encrypting;
// it still decrypts. It returns [ErrKeyVersionNotFound], or
// [ErrCurrentKeyVersion] for the current version.
func (c *Client) DisableKeyVersion(ctx context.Context, name string, version int) error {
	body := jsonBody(KeyVersionRequest{Version: version})
	return c.call(ctx, request{method: http.MethodPut, path: []string{"v1", "key", "disable", name}, body: body}, nil)
}

// EnableKeyVersion undoes [Client.DisableKeyVersion].
func (c *Client) EnableKeyVersion(ctx context.Context, name string, version int) error {
	body := jsonBody(KeyVersionRequest{Version: version})
	return c.call(ctx, request{method: http.MethodPut, path: []string{"v1", "key", "enable", name}, body: body}, nil)
}

// EncryptVersion is [Client.Encrypt] with a version of the key (0: the
// current one). It returns the ciphertext and the version that encrypted
// (0 if the key was never rotated: the server then answers as upstream).
func (c *Client) EncryptVersion(ctx context.Context, name string, version int, plaintext, context []byte) ([]byte, int, error) {
	req := EncryptKeyRequest{Plaintext: plaintext, Context: context}
	if version > 0 {
		req.Version = strconv.Itoa(version)
	}
	body := jsonBody(req)
	defer clear(body)
	var v EncryptKeyResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: []string{"v1", "key", "encrypt", name}, body: body}, &v); err != nil {
		return nil, 0, err
	}
	n, _ := strconv.Atoi(v.Version)
	return v.Ciphertext, n, nil
}

// Rewrap decrypts ciphertext with the key called name and the associated
// data context, and encrypts the plaintext again under the key's current
// version, at the server: the plaintext never leaves it. It returns
// [ErrDecrypt] as Decrypt does.
func (c *Client) Rewrap(ctx context.Context, name string, ciphertext, context []byte) (*RewrapResponse, error) {
	var v RewrapResponse
	req := request{method: http.MethodPut, path: []string{"v1", "key", "rewrap", name}, body: jsonBody(RewrapRequest{Ciphertext: ciphertext, Context: context})}
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// BulkRewrap is [Client.Rewrap] for up to 1000 ciphertexts in one request:
// either all are re-wrapped, in order, or it returns an error (ErrDecrypt
// if one is not authentic, [ErrTooManyCiphertexts]) and none.
func (c *Client) BulkRewrap(ctx context.Context, name string, items []RewrapItem) (*BulkRewrapResponse, error) {
	var v BulkRewrapResponse
	req := request{method: http.MethodPut, path: []string{"v1", "key", "bulk", "rewrap", name}, body: jsonBody(BulkRewrapRequest{Ciphertexts: items})}
	if err := c.call(ctx, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
