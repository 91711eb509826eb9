package auth

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/names"
)

// PolicyConfig is one policy of the configuration file: its patterns and the
// identities assigned to it.
type PolicyConfig struct {
	Allow      []string
	Deny       []string
	Identities []kes.Identity
}

// Authorizer decides whether an identity may call a request path, and keeps
// the policies and identity → policy assignments the decision is based on.
//
// It is built from the configuration by [New]. Runtime changes
// ([Authorizer.WritePolicy], [Authorizer.DeletePolicy], [Authorizer.Assign],
// [Authorizer.DeleteIdentity]) are ephemeral, as on upstream servers up to
// v0.20: they live in memory only, and a new Authorizer built from the same
// configuration has exactly the configured state again.
//
// An Authorizer is safe for concurrent use. Reads never block: they load an
// immutable snapshot, and writers replace the snapshot under a mutex
// (copy-on-write), so a write costs O(policies + identities).
type Authorizer struct {
	// Now returns the current time for the created_at of runtime changes.
	// Nil means time.Now. It is only called by writers, one at a time, and
	// must not be changed after the first write.
	Now func() time.Time

	admin   kes.Identity
	started time.Time

	mu    sync.Mutex // serialises writers
	state atomic.Pointer[snapshot]
}

// snapshot is the immutable authorization state. Writers clone it.
type snapshot struct {
	policies   map[string]*policyEntry
	identities map[kes.Identity]*assignment
}

type policyEntry struct {
	name      string
	policy    *Policy
	createdAt time.Time
	createdBy kes.Identity
}

type assignment struct {
	policy    *policyEntry
	createdAt time.Time
	createdBy kes.Identity
}

// New returns an [Authorizer] for the admin identity and the configured
// policies. startTime is reported as created_at of the admin, the configured
// policies and their assignments; created_by of those is the admin.
//
// The admin may be any non-empty string ([ErrNoAdmin] otherwise); a value
// that is not a computable identity (such as "disabled") disables admin
// access. New validates the policies in name order with [CheckPolicies]
// and returns its first error. Patterns are not validated (see
// [NewPolicy]). New does not keep references to the given slices.
func New(admin kes.Identity, policies map[string]PolicyConfig, startTime time.Time) (*Authorizer, error) {
	if admin == "" {
		return nil, ErrNoAdmin
	}
	if err := CheckPolicies(admin, nil, slices.Sorted(maps.Keys(policies)), policies); err != nil {
		return nil, err
	}
	s := &snapshot{
		policies:   make(map[string]*policyEntry, len(policies)),
		identities: make(map[kes.Identity]*assignment),
	}
	for name, conf := range policies {
		entry := &policyEntry{
			name:      name,
			policy:    NewPolicy(conf.Allow, conf.Deny),
			createdAt: startTime,
			createdBy: admin,
		}
		s.policies[name] = entry
		for _, id := range conf.Identities {
			s.identities[id] = &assignment{policy: entry, createdAt: startTime, createdBy: admin}
		}
	}
	a := &Authorizer{admin: admin, started: startTime}
	a.state.Store(s)
	return a, nil
}

// CheckPolicies applies the rules of configured policies
// (identity-and-auth.md §4.2) to the policies named in order, in that
// order, and returns the first violation as a [*PolicyError]:
//
//   - an invalid policy name or identity (internal/names): Err is the
//     [kes.ErrInvalidPolicyName] / [kes.ErrInvalidIdentity] value, wrapped
//     with the "kes: " prefix of the upstream message;
//   - an identity equal to the admin or to one of the TLS proxies: an
//     [*AssignError] wrapping [ErrAdminInPolicy] or [ErrProxyInPolicy];
//   - an identity listed in two policies: an [*AssignError] wrapping
//     [ErrHasPolicy] that names the later policy in order. An identity
//     listed twice in the same policy is accepted.
//
// The configuration file checks in file order, [New] in name order; the
// rules and their texts are only here.
func CheckPolicies(admin kes.Identity, proxies []kes.Identity, order []string, policies map[string]PolicyConfig) error {
	owner := make(map[kes.Identity]string)
	for _, name := range order {
		if !names.Valid(name) {
			return &PolicyError{Policy: name, Index: -1, Err: fmt.Errorf("kes: %w", kes.ErrInvalidPolicyName(name))}
		}
		for i, id := range policies[name].Identities {
			var err error
			switch prev, ok := owner[id]; {
			case !names.Valid(string(id)):
				err = fmt.Errorf("kes: %w", kes.ErrInvalidIdentity(string(id)))
			case id == admin:
				err = &AssignError{Policy: name, Identity: id, Err: ErrAdminInPolicy}
			case slices.Contains(proxies, id):
				err = &AssignError{Policy: name, Identity: id, Err: ErrProxyInPolicy}
			case ok && prev != name:
				err = &AssignError{Policy: name, Identity: id, Err: ErrHasPolicy}
			}
			if err != nil {
				return &PolicyError{Policy: name, Index: i, Err: err}
			}
			owner[id] = name
		}
	}
	return nil
}

// Authorize returns nil if id may call path: id is the admin, or id is
// assigned to a policy that allows path. Otherwise it returns
// [kes.ErrNotAllowed]. The empty identity is never allowed.
//
// Authorize is the per-request hot path: it takes no lock and does not
// allocate.
func (a *Authorizer) Authorize(id kes.Identity, path string) error {
	_, err := a.Check(id, path)
	return err
}

// Check is [Authorizer.Authorize] that also returns the name of the policy
// that decided, for the debug log: on [kes.ErrNotAllowed] an empty name
// means the identity has no policy ("access denied: identity not found"),
// otherwise the policy rejected the path ("access denied: rejected by
// policy '<name>'"). For the admin the name is empty and err is nil.
func (a *Authorizer) Check(id kes.Identity, path string) (policy string, err error) {
	if id == "" {
		return "", kes.ErrNotAllowed
	}
	if id == a.admin {
		return "", nil
	}
	as, ok := a.state.Load().identities[id]
	if !ok {
		return "", kes.ErrNotAllowed
	}
	if !as.policy.policy.Allows(path) {
		return as.policy.name, kes.ErrNotAllowed
	}
	return as.policy.name, nil
}

// CheckDelegated is [Authorizer.Check] for the routes that change
// policies and assignments (spec api.md §5, the OpenKES rule below the
// legacy routes table): besides the admin, only an identity whose policy
// names path exactly ([Policy.Names]) may call it. A wildcard pattern such
// as "/v1/policy/*" never grants these routes, even though it matches them:
// upstream HEAD has no such routes, so configurations hand out those
// patterns for read access only.
func (a *Authorizer) CheckDelegated(id kes.Identity, path string) (policy string, err error) {
	if id == "" {
		return "", kes.ErrNotAllowed
	}
	if id == a.admin {
		return "", nil
	}
	as, ok := a.state.Load().identities[id]
	if !ok {
		return "", kes.ErrNotAllowed
	}
	if !as.policy.policy.Names(path) {
		return as.policy.name, kes.ErrNotAllowed
	}
	return as.policy.name, nil
}

// PolicyName returns the name of the policy id is assigned to, from the
// configuration or at runtime; ok is false if id has none (the admin has
// none). Like [Authorizer.Check] it takes no lock and does not allocate.
func (a *Authorizer) PolicyName(id kes.Identity) (policy string, ok bool) {
	as, ok := a.state.Load().identities[id]
	if !ok {
		return "", false
	}
	return as.policy.name, true
}

// IsAdmin reports whether id is the admin identity.
func (a *Authorizer) IsAdmin(id kes.Identity) bool { return id != "" && id == a.admin }

// Admin returns the admin identity.
func (a *Authorizer) Admin() kes.Identity { return a.admin }

// update applies fn to a copy of the current snapshot and publishes the copy
// if fn succeeds. Writers are serialised; readers keep the old snapshot
// until the new one is stored.
func (a *Authorizer) update(fn func(s *snapshot) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.state.Load()
	s := &snapshot{
		policies:   maps.Clone(old.policies),
		identities: maps.Clone(old.identities),
	}
	if err := fn(s); err != nil {
		return err
	}
	a.state.Store(s)
	return nil
}

func (a *Authorizer) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}
