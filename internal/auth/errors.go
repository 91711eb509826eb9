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
)

// AssignError reports an identity that a configured policy may not list.
// Err is [ErrAdminInPolicy] or [ErrHasPolicy]; Error returns the exact
// upstream text (spec config.md §7).
type AssignError struct {
	Policy   string
	Identity kes.Identity
	Err      error
}

func (e *AssignError) Error() string {
	if e.Err == ErrAdminInPolicy {
		return fmt.Sprintf("kesconf: invalid policy '%s': identity '%s' is already admin", e.Policy, e.Identity)
	}
	return fmt.Sprintf("kes: cannot assign policy '%s' to '%s': identity already has a policy", e.Policy, e.Identity)
}

// Unwrap returns Err.
func (e *AssignError) Unwrap() error { return e.Err }
