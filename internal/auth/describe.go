package auth

import (
	"slices"
	"strings"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/names"
)

// PolicyInfo describes a policy for the policy describe/read API.
type PolicyInfo struct {
	Name  string
	Allow []string // allow patterns as configured or written; owned by the caller
	Deny  []string // deny patterns as configured or written; owned by the caller
	// CreatedAt is the start time for configured policies and the time of
	// the write for policies written at runtime.
	CreatedAt time.Time
	// CreatedBy is the admin for configured policies and the writer's
	// identity for policies written at runtime.
	CreatedBy kes.Identity
}

// IdentityInfo describes an identity for the identity describe API.
type IdentityInfo struct {
	Identity kes.Identity
	IsAdmin  bool
	Policy   string // name of the assigned policy; empty for the admin
	// CreatedAt is the start time for the admin and configured assignments,
	// and the time of the assignment for runtime assignments.
	CreatedAt time.Time
	// CreatedBy is empty for the admin, the admin for configured
	// assignments and the assigning identity for runtime assignments.
	CreatedBy kes.Identity
}

// DescribePolicy returns the named policy. It returns
// [kes.ErrInvalidPolicyName] for an invalid name and [kes.ErrPolicyNotFound]
// if no such policy exists.
func (a *Authorizer) DescribePolicy(name string) (PolicyInfo, error) {
	if !names.Valid(name) {
		return PolicyInfo{}, kes.ErrInvalidPolicyName(name)
	}
	entry, ok := a.state.Load().policies[name]
	if !ok {
		return PolicyInfo{}, kes.ErrPolicyNotFound
	}
	return entry.info(), nil
}

// ListPolicies returns the sorted names of the policies that start with
// pattern. pattern is a listing pattern (spec api.md §3.1): one trailing '*'
// is stripped, so "", "*" and "my-*" list by prefix as upstream's policy
// listing does. It returns [kes.ErrInvalidPattern] for an invalid pattern.
// The result is never nil.
func (a *Authorizer) ListPolicies(pattern string) ([]string, error) {
	prefix, err := listPrefix(pattern)
	if err != nil {
		return nil, err
	}
	list := []string{}
	for name := range a.state.Load().policies {
		if strings.HasPrefix(name, prefix) {
			list = append(list, name)
		}
	}
	slices.Sort(list)
	return list, nil
}

// DescribeIdentity returns the admin flag or the policy of id. It returns
// [kes.ErrInvalidIdentity] for an invalid identity and
// [kes.ErrIdentityNotFound] if id is neither the admin nor assigned.
func (a *Authorizer) DescribeIdentity(id kes.Identity) (IdentityInfo, error) {
	if !names.Valid(string(id)) {
		return IdentityInfo{}, kes.ErrInvalidIdentity(string(id))
	}
	if id == a.admin {
		return IdentityInfo{Identity: id, IsAdmin: true, CreatedAt: a.started}, nil
	}
	as, ok := a.state.Load().identities[id]
	if !ok {
		return IdentityInfo{}, kes.ErrIdentityNotFound
	}
	return IdentityInfo{
		Identity:  id,
		Policy:    as.policy.name,
		CreatedAt: as.createdAt,
		CreatedBy: as.createdBy,
	}, nil
}

// ListIdentities returns the sorted identities that start with pattern: the
// assigned ones and the admin. pattern is a listing pattern as for
// [Authorizer.ListPolicies]. It returns [kes.ErrInvalidPattern] for an
// invalid pattern. The result is never nil.
func (a *Authorizer) ListIdentities(pattern string) ([]kes.Identity, error) {
	prefix, err := listPrefix(pattern)
	if err != nil {
		return nil, err
	}
	list := []kes.Identity{}
	if strings.HasPrefix(string(a.admin), prefix) {
		list = append(list, a.admin)
	}
	for id := range a.state.Load().identities {
		if strings.HasPrefix(string(id), prefix) {
			list = append(list, id)
		}
	}
	slices.Sort(list)
	return list, nil
}

// PolicyOf returns the policy assigned to id, for self-describe. It returns
// [kes.ErrIdentityNotFound] if id has no policy, which includes the admin:
// check [Authorizer.IsAdmin] first.
func (a *Authorizer) PolicyOf(id kes.Identity) (PolicyInfo, error) {
	as, ok := a.state.Load().identities[id]
	if !ok {
		return PolicyInfo{}, kes.ErrIdentityNotFound
	}
	return as.policy.info(), nil
}

func (e *policyEntry) info() PolicyInfo {
	return PolicyInfo{
		Name:      e.name,
		Allow:     e.policy.Allow(),
		Deny:      e.policy.Deny(),
		CreatedAt: e.createdAt,
		CreatedBy: e.createdBy,
	}
}

// listPrefix turns a listing pattern into a name prefix.
func listPrefix(pattern string) (string, error) {
	if !names.ValidPattern(pattern) {
		return "", kes.ErrInvalidPattern(pattern)
	}
	return strings.TrimSuffix(pattern, "*"), nil
}
