package kes

import (
	"context"
	"net/http"
)

// Version returns the version and commit of the server.
func (c *Client) Version(ctx context.Context) (*VersionResponse, error) {
	var v VersionResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"version"}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Status returns the state of the server and its key store.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var v StatusResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "status"}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// IsReady reports whether a server is ready to serve requests: nil when it
// is, [ErrStoreUnreachable] or [ErrStoreUnavailable] when its key store is
// not, or the error that prevented the check.
func (c *Client) IsReady(ctx context.Context) error {
	return c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "ready"}}, nil)
}

// APIs returns the routes the server serves, in no particular order.
func (c *Client) APIs(ctx context.Context) ([]API, error) {
	var v []API
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "api"}}, &v); err != nil {
		return nil, err
	}
	return v, nil
}
