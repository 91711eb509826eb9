package kes

import (
	"context"
	"iter"
	"net/http"
)

// DescribeIdentity returns whether identity is the admin or which policy it
// is assigned to, or [ErrIdentityNotFound].
func (c *Client) DescribeIdentity(ctx context.Context, identity Identity) (*DescribeIdentityResponse, error) {
	var v DescribeIdentityResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "identity", "describe", identity.String()}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DescribeSelf describes the identity of the client itself and its policy.
// Unlike other calls it needs no policy permission.
func (c *Client) DescribeSelf(ctx context.Context) (*DescribeSelfResponse, error) {
	var v DescribeSelfResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "identity", "self", "describe"}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListIdentities returns an iterator over the identities that start with
// prefix, as [Client.ListKeys] does for keys.
func (c *Client) ListIdentities(ctx context.Context, prefix string) iter.Seq2[Identity, error] {
	return listNames(ctx, c, "identity", prefix, func(r *ListIdentitiesResponse) ([]Identity, string) {
		return r.Identities, r.ContinueAt
	})
}

// AssignIdentity assigns the policy called policy to identity until the
// server restarts, with the route of releases up to v0.17
// (POST /v1/identity/assign/<policy>/<identity>). Prefer [Client.AssignPolicy].
func (c *Client) AssignIdentity(ctx context.Context, policy string, identity Identity) error {
	return c.call(ctx, request{method: http.MethodPost, path: []string{"v1", "identity", "assign", policy, identity.String()}}, nil)
}

// ForgetIdentity removes the policy assignment of identity, with the route
// of releases up to v0.17 (DELETE /v1/identity/forget/<identity>).
func (c *Client) ForgetIdentity(ctx context.Context, identity Identity) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"v1", "identity", "forget", identity.String()}}, nil)
}

// DeleteIdentity removes the ephemeral policy assignment of identity
// (DELETE /v1/identity/delete/<identity>).
func (c *Client) DeleteIdentity(ctx context.Context, identity Identity) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"v1", "identity", "delete", identity.String()}}, nil)
}
