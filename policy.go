package kes

import (
	"context"
	"iter"
	"net/http"
)

// DescribePolicy returns metadata of the policy called name, or
// [ErrPolicyNotFound].
func (c *Client) DescribePolicy(ctx context.Context, name string) (*DescribePolicyResponse, error) {
	var v DescribePolicyResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "policy", "describe", name}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// GetPolicy returns the policy called name with its allow and deny
// patterns, or [ErrPolicyNotFound].
func (c *Client) GetPolicy(ctx context.Context, name string) (*GetPolicyResponse, error) {
	var v GetPolicyResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: []string{"v1", "policy", "read", name}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListPolicies returns an iterator over the names of the policies that
// start with prefix, as [Client.ListKeys] does for keys.
func (c *Client) ListPolicies(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return listNames(ctx, c, "policy", prefix, func(r *ListPoliciesResponse) ([]string, string) {
		return r.Names, r.ContinueAt
	})
}

// SetPolicy creates or replaces the ephemeral policy called name with the
// given allow and deny patterns (POST /v1/policy/write/<name>). The server
// keeps it in memory only: it is gone after a restart.
func (c *Client) SetPolicy(ctx context.Context, name string, allow, deny []string) error {
	if allow == nil {
		allow = []string{}
	}
	if deny == nil {
		deny = []string{}
	}
	req := request{method: http.MethodPost, path: []string{"v1", "policy", "write", name}, body: jsonBody(WritePolicyRequest{Allow: allow, Deny: deny})}
	return c.call(ctx, req, nil)
}

// DeletePolicy deletes the ephemeral policy called name
// (DELETE /v1/policy/delete/<name>).
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"v1", "policy", "delete", name}}, nil)
}

// AssignPolicy assigns the policy called policy to identity until the server
// restarts (POST /v1/policy/assign/<policy>).
func (c *Client) AssignPolicy(ctx context.Context, policy string, identity Identity) error {
	req := request{method: http.MethodPost, path: []string{"v1", "policy", "assign", policy}, body: jsonBody(AssignPolicyRequest{Identity: identity})}
	return c.call(ctx, req, nil)
}
