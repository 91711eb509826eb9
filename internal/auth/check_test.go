package auth_test

import (
	"errors"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// TestCheckPolicies: the rules of configured policies, in the caller's
// order, with the exact upstream texts and the place of the fault.
func TestCheckPolicies(t *testing.T) {
	proxy := idC
	tests := []struct {
		name     string
		order    []string
		policies map[string]auth.PolicyConfig
		policy   string // of the *PolicyError
		index    int
		is       error
		text     string
	}{
		{"name", []string{"my policy"}, map[string]auth.PolicyConfig{"my policy": {}}, "my policy", -1, nil,
			"kes: policy name 'my policy' is empty, too long or contains invalid characters"},
		{"identity", []string{"p"}, map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{idA, "_"}}}, "p", 1, nil,
			"kes: identity '_' is empty, too long or contains invalid characters"},
		{"admin", []string{"p"}, map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{admin}}}, "p", 0, auth.ErrAdminInPolicy,
			"kesconf: invalid policy 'p': identity '" + string(admin) + "' is already admin"},
		{"proxy", []string{"p"}, map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{proxy}}}, "p", 0, auth.ErrProxyInPolicy,
			"kesconf: invalid policy 'p': identity '" + string(proxy) + "' is already a TLS proxy"},
		// File order, not name order: the later of the two is "a".
		{"two policies", []string{"b", "a"}, map[string]auth.PolicyConfig{
			"a": {Identities: []kes.Identity{idB, idA}}, "b": {Identities: []kes.Identity{idA}},
		}, "a", 1, auth.ErrHasPolicy, "kes: cannot assign policy 'a' to '" + string(idA) + "': identity already has a policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.CheckPolicies(admin, []kes.Identity{proxy}, tt.order, tt.policies)
			var perr *auth.PolicyError
			if !errors.As(err, &perr) {
				t.Fatalf("got %v, want a *PolicyError", err)
			}
			if perr.Policy != tt.policy || perr.Index != tt.index {
				t.Errorf("at policy %q identity %d, want %q %d", perr.Policy, perr.Index, tt.policy, tt.index)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if err.Error() != tt.text {
				t.Errorf("text %q, want %q", err, tt.text)
			}
		})
	}
	ok := map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{idA, idA}}, "q": {Identities: []kes.Identity{idB}}}
	if err := auth.CheckPolicies(admin, []kes.Identity{proxy}, []string{"p", "q"}, ok); err != nil {
		t.Errorf("valid policies: %v", err)
	}
}
