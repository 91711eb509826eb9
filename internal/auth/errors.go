package auth

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/openkes/kes"
)

// Errors of the legacy assign route (spec api.md §5), with the exact texts
// that servers up to v0.17 answered.
var (
	// ErrSelfAssign is returned when an identity tries to assign a policy
	// to itself.
	ErrSelfAssign = kes.NewError(http.StatusForbidden, "identity cannot assign policy to itself")
	// ErrAssignAdmin is returned when a policy is assigned to, or an
	// assignment removed from, the admin identity.
	ErrAssignAdmin = kes.NewError(http.StatusBadRequest, "identity is root")
	// ErrSelfPolicy is returned when an identity other than the admin
	// tries to write or delete the policy assigned to it, or to remove its
	// own assignment. An OpenKES rule: upstream servers let a policy that
	// allowed the write route rewrite itself to allow everything.
	ErrSelfPolicy = kes.NewError(http.StatusForbidden, "identity cannot change its own policy")
)

// ErrNoAdmin is returned by [New] for an empty admin identity. The empty
// identity is what identify-only routes see for clients without a
// certificate, so it must never be privileged.
var ErrNoAdmin = errors.New("auth: admin identity is empty")

// Causes of an [AssignError] in the configuration.
var (
	// ErrAdminInPolicy means a policy lists the admin identity.
	ErrAdminInPolicy = errors.New("auth: identity is already admin")
	// ErrHasPolicy means an identity is listed in more than one policy.
	ErrHasPolicy = errors.New("auth: identity already has a policy")
	// ErrProxyInPolicy means a policy lists a TLS proxy identity.
	ErrProxyInPolicy = errors.New("auth: identity is already a TLS proxy")
)

// AssignError reports an identity that a configured policy may not list.
// Err is [ErrAdminInPolicy], [ErrProxyInPolicy] or [ErrHasPolicy]; Error
// returns the exact upstream text (spec config.md §7).
type AssignError struct {
	Policy   string
	Identity kes.Identity
	Err      error
}

func (e *AssignError) Error() string {
	switch e.Err {
	case ErrAdminInPolicy:
		return fmt.Sprintf("kesconf: invalid policy '%s': identity '%s' is already admin", e.Policy, e.Identity)
	case ErrProxyInPolicy:
		return fmt.Sprintf("kesconf: invalid policy '%s': identity '%s' is already a TLS proxy", e.Policy, e.Identity)
	}
	return fmt.Sprintf("kes: cannot assign policy '%s' to '%s': identity already has a policy", e.Policy, e.Identity)
}

// Unwrap returns Err.
func (e *AssignError) Unwrap() error { return e.Err }

// PolicyError is a configured policy that [CheckPolicies] refuses: which
// policy, which of its identities, and why. Its text is Err's, the upstream
// message; a configuration file adds where.
type PolicyError struct {
	Policy string
	// Index is the position of the offending identity in the policy's
	// Identities, or -1 if the policy name is at fault.
	Index int
	Err   error
}

func (e *PolicyError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *PolicyError) Unwrap() error { return e.Err }
