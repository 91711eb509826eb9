package auth

import (
	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/names"
)

// The methods below implement the legacy runtime routes (spec api.md §5:
// /v1/policy/write, /v1/policy/delete, /v1/identity/assign,
// /v1/policy/assign, /v1/identity/forget, /v1/identity/delete). Whether the
// caller may use them at all is decided by [Authorizer.Authorize] on the
// route's path with [Authorizer.CheckDelegated]: the admin, or a policy that
// names the path without wildcards. These methods enforce the rules of the
// change itself, whoever the caller: no identity but the admin changes the
// policy that governs itself ([ErrSelfPolicy]) or assigns itself a policy
// ([ErrSelfAssign]).
//
// A policy that names these paths still delegates real power: its holders
// can write the named policy to allow everything and assign it to another
// identity they control. Delegate them only to identities trusted as much.

// WritePolicy creates the named policy, or replaces it if it exists. The
// identities assigned to a replaced policy stay assigned and get the new
// patterns. created_at is the current time and created_by is caller.
//
// It returns [kes.ErrInvalidPolicyName] for an invalid name and
// [ErrSelfPolicy] if name is the policy of caller (who is not the admin).
// Patterns are not validated (see [NewPolicy]); bounding their size is the
// job of the request body limit. The slices are copied.
func (a *Authorizer) WritePolicy(caller kes.Identity, name string, allow, deny []string) error {
	if !names.Valid(name) {
		return kes.ErrInvalidPolicyName(name)
	}
	policy := NewPolicy(allow, deny)
	return a.update(func(s *snapshot) error {
		if a.governs(s, caller, name) {
			return ErrSelfPolicy
		}
		entry := &policyEntry{name: name, policy: policy, createdAt: a.now(), createdBy: caller}
		s.policies[name] = entry
		for id, as := range s.identities {
			if as.policy.name == name {
				s.identities[id] = &assignment{policy: entry, createdAt: as.createdAt, createdBy: as.createdBy}
			}
		}
		return nil
	})
}

// DeletePolicy removes the named policy and every assignment to it; the
// identities it had are then unknown and rejected.
//
// It returns [kes.ErrInvalidPolicyName] for an invalid name,
// [ErrSelfPolicy] if name is the policy of caller (who is not the admin)
// and [kes.ErrPolicyNotFound] if no such policy exists.
func (a *Authorizer) DeletePolicy(caller kes.Identity, name string) error {
	if !names.Valid(name) {
		return kes.ErrInvalidPolicyName(name)
	}
	return a.update(func(s *snapshot) error {
		if a.governs(s, caller, name) {
			return ErrSelfPolicy
		}
		if _, ok := s.policies[name]; !ok {
			return kes.ErrPolicyNotFound
		}
		delete(s.policies, name)
		for id, as := range s.identities {
			if as.policy.name == name {
				delete(s.identities, id)
			}
		}
		return nil
	})
}

// Assign assigns the named policy to id on behalf of caller. created_at is
// the current time and created_by is caller.
//
// An identity has at most one policy. If id already has one, the assignment
// moves to the new policy, as on upstream servers up to v0.17 (assigning the
// same policy again only renews created_at and created_by).
//
// Errors, checked in this order: [kes.ErrInvalidPolicyName],
// [kes.ErrInvalidIdentity], [ErrAssignAdmin] (id is the admin),
// [ErrSelfAssign] (id is caller), [kes.ErrPolicyNotFound].
func (a *Authorizer) Assign(caller kes.Identity, policy string, id kes.Identity) error {
	if !names.Valid(policy) {
		return kes.ErrInvalidPolicyName(policy)
	}
	if !names.Valid(string(id)) {
		return kes.ErrInvalidIdentity(string(id))
	}
	if id == a.admin {
		return ErrAssignAdmin
	}
	if id == caller {
		return ErrSelfAssign
	}
	return a.update(func(s *snapshot) error {
		entry, ok := s.policies[policy]
		if !ok {
			return kes.ErrPolicyNotFound
		}
		s.identities[id] = &assignment{policy: entry, createdAt: a.now(), createdBy: caller}
		return nil
	})
}

// DeleteIdentity removes the policy assignment of id (the legacy forget and
// delete identity routes); id is then unknown and rejected. Deleting an
// identity without a policy succeeds and changes nothing, so repeating a
// delete is harmless.
//
// It returns [kes.ErrInvalidIdentity] for an invalid identity,
// [ErrAssignAdmin] for the admin, whose status only the configuration
// changes, and [ErrSelfPolicy] if id is caller.
func (a *Authorizer) DeleteIdentity(caller kes.Identity, id kes.Identity) error {
	if !names.Valid(string(id)) {
		return kes.ErrInvalidIdentity(string(id))
	}
	if id == a.admin {
		return ErrAssignAdmin
	}
	if id == caller {
		return ErrSelfPolicy
	}
	return a.update(func(s *snapshot) error {
		delete(s.identities, id)
		return nil
	})
}

// governs reports whether policy is the policy of caller in s and caller is
// not the admin: a change of it would change caller's own rights.
func (a *Authorizer) governs(s *snapshot, caller kes.Identity, policy string) bool {
	if caller == a.admin {
		return false
	}
	as, ok := s.identities[caller]
	return ok && as.policy.name == policy
}
