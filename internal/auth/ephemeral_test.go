package auth_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// config is a configuration with one policy, "app", held by idA.
func config() map[string]auth.PolicyConfig {
	return map[string]auth.PolicyConfig{
		"app": {Allow: []string{"/v1/key/generate/app-*"}, Identities: []kes.Identity{idA}},
	}
}

// clock is an injected clock that advances one second per call. It is not
// safe for concurrent use; the Authorizer calls it under its write lock.
func clock() func() time.Time {
	now := start
	return func() time.Time {
		now = now.Add(time.Second)
		return now
	}
}

func mustNew(t *testing.T) *auth.Authorizer {
	t.Helper()
	a, err := auth.New(admin, config(), start)
	if err != nil {
		t.Fatal(err)
	}
	a.Now = clock()
	return a
}

func TestEphemeralFlow(t *testing.T) {
	a := mustNew(t)

	// Write a policy as idA (its own policy allows that path on a server).
	if err := a.WritePolicy(idA, "ops", []string{"/v1/status", "/v1/key/*/ops-key"}, []string{"/v1/key/delete/*"}); err != nil {
		t.Fatal(err)
	}
	p, err := a.DescribePolicy("ops")
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(time.Second); !p.CreatedAt.Equal(want) || p.CreatedBy != idA {
		t.Errorf("ops created (%v, %s), want (%v, %s)", p.CreatedAt, p.CreatedBy, want, idA)
	}
	if err := a.Authorize(idB, "/v1/status"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("unassigned idB: %v", err)
	}

	// Assign it to idB; idB may now call the policy's paths.
	if err := a.Assign(idA, "ops", idB); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]error{
		"/v1/status":              nil,
		"/v1/key/decrypt/ops-key": nil, // legacy segment glob
		"/v1/key/delete/ops-key":  kes.ErrNotAllowed,
		"/v1/key/generate/app-1":  kes.ErrNotAllowed,
	} {
		if err := a.Authorize(idB, path); err != want {
			t.Errorf("idB %s: got %v, want %v", path, err, want)
		}
	}
	info, err := a.DescribeIdentity(idB)
	if want := start.Add(2 * time.Second); err != nil || info.Policy != "ops" || !info.CreatedAt.Equal(want) || info.CreatedBy != idA {
		t.Errorf("DescribeIdentity(idB) = %+v, %v", info, err)
	}

	// Replacing the policy keeps idB assigned, with the new patterns.
	if err := a.WritePolicy(admin, "ops", []string{"/v1/metrics"}, nil); err != nil {
		t.Fatal(err)
	}
	if a.Authorize(idB, "/v1/status") == nil || a.Authorize(idB, "/v1/metrics") != nil {
		t.Error("replaced policy not in effect for idB")
	}
	if p, _ := a.PolicyOf(idB); p.CreatedBy != admin || !slices.Equal(p.Allow, []string{"/v1/metrics"}) {
		t.Errorf("PolicyOf(idB) = %+v", p)
	}

	// Re-assigning moves idA from its configured policy to ops.
	if err := a.Assign(idB, "ops", idA); err != nil {
		t.Fatal(err)
	}
	if a.Authorize(idA, "/v1/key/generate/app-1") == nil || a.Authorize(idA, "/v1/metrics") != nil {
		t.Error("idA did not move to ops")
	}

	// Forget idB: unknown again. Forgetting twice is harmless.
	for range 2 {
		if err := a.DeleteIdentity(admin, idB); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.DescribeIdentity(idB); !errors.Is(err, kes.ErrIdentityNotFound) {
		t.Errorf("forgotten idB: %v", err)
	}

	// Deleting ops drops idA's assignment too.
	if err := a.DeletePolicy(admin, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeletePolicy(admin, "ops"); !errors.Is(err, kes.ErrPolicyNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := a.PolicyOf(idA); !errors.Is(err, kes.ErrIdentityNotFound) {
		t.Errorf("idA after deleting ops: %v", err)
	}
	if names, _ := a.ListPolicies(""); !slices.Equal(names, []string{"app"}) {
		t.Errorf("policies: %v", names)
	}

	// Restart: exactly the configuration again.
	a = mustNew(t)
	if err := a.Authorize(idA, "/v1/key/generate/app-1"); err != nil {
		t.Errorf("configured idA after restart: %v", err)
	}
	if _, err := a.DescribePolicy("ops"); !errors.Is(err, kes.ErrPolicyNotFound) {
		t.Errorf("ops after restart: %v", err)
	}
}

func TestRestartForgetsChanges(t *testing.T) {
	a := mustNew(t)
	if err := a.WritePolicy(admin, "extra", []string{"*"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Assign(admin, "extra", idB); err != nil {
		t.Fatal(err)
	}
	if err := a.WritePolicy(admin, "app", nil, nil); err != nil { // replace a configured policy
		t.Fatal(err)
	}
	if err := a.DeleteIdentity(admin, idA); err != nil {
		t.Fatal(err)
	}

	b := mustNew(t)
	want, _ := b.ListIdentities("")
	if !slices.Equal(want, []kes.Identity{idA, admin}) {
		t.Errorf("identities after restart: %v", want)
	}
	if p, _ := b.DescribePolicy("app"); !slices.Equal(p.Allow, []string{"/v1/key/generate/app-*"}) || !p.CreatedAt.Equal(start) {
		t.Errorf("app after restart: %+v", p)
	}
	if names, _ := b.ListPolicies("*"); !slices.Equal(names, []string{"app"}) {
		t.Errorf("policies after restart: %v", names)
	}
}

func TestAssignErrors(t *testing.T) {
	tests := []struct {
		name   string
		caller kes.Identity
		policy string
		id     kes.Identity
		want   error
		status int
	}{
		{"invalid-policy", admin, "bad.name", idB, kes.ErrInvalidPolicyName("bad.name"), 400},
		{"invalid-identity", admin, "app", "not hex!", kes.ErrInvalidIdentity("not hex!"), 400},
		{"empty-identity", admin, "app", "", kes.ErrInvalidIdentity(""), 400},
		{"admin", idA, "app", admin, auth.ErrAssignAdmin, 400},
		{"admin-by-admin", admin, "app", admin, auth.ErrAssignAdmin, 400},
		{"self", idB, "app", idB, auth.ErrSelfAssign, 403},
		{"unknown-policy", admin, "nosuchpolicy", idB, kes.ErrPolicyNotFound, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustNew(t)
			err := a.Assign(tt.caller, tt.policy, tt.id)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var kerr *kes.Error
			if !errors.As(err, &kerr) || kerr.Status != tt.status {
				t.Errorf("status: got %v, want %d", err, tt.status)
			}
			if ids, _ := a.ListIdentities(""); !slices.Equal(ids, []kes.Identity{idA, admin}) {
				t.Errorf("state changed: %v", ids)
			}
		})
	}
}

func TestAssignErrorTexts(t *testing.T) {
	for err, text := range map[*kes.Error]string{
		auth.ErrSelfAssign:  "identity cannot assign policy to itself",
		auth.ErrAssignAdmin: "identity is root",
	} {
		if err.Error() != text {
			t.Errorf("got %q, want %q", err, text)
		}
	}
}

func TestWriteDeleteErrors(t *testing.T) {
	a := mustNew(t)
	if err := a.WritePolicy(admin, "-bad", nil, nil); !errors.Is(err, kes.ErrInvalidPolicyName("-bad")) {
		t.Errorf("WritePolicy(-bad): %v", err)
	}
	if err := a.DeletePolicy(admin, "_"); !errors.Is(err, kes.ErrInvalidPolicyName("_")) {
		t.Errorf("DeletePolicy(_): %v", err)
	}
	if err := a.DeleteIdentity(admin, "a.b"); !errors.Is(err, kes.ErrInvalidIdentity("a.b")) {
		t.Errorf("DeleteIdentity(a.b): %v", err)
	}
	if err := a.DeleteIdentity(admin, admin); !errors.Is(err, auth.ErrAssignAdmin) {
		t.Errorf("DeleteIdentity(admin): %v", err)
	}
	if err := a.Authorize(admin, "/v1/status"); err != nil {
		t.Errorf("admin after failed delete: %v", err)
	}
}

// TestConcurrentAuthorize runs Authorize and the read API while writers
// change the state; run it with -race. The configured identity idA must be
// allowed throughout, and idB must only ever see a whole policy.
func TestConcurrentAuthorize(t *testing.T) {
	a := mustNew(t)
	const rounds = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := a.Authorize(idA, "/v1/key/generate/app-1"); err != nil {
					t.Errorf("idA: %v", err)
					return
				}
				// idB's policy either does not exist or allows /v1/status
				// and denies /v1/status/x: never a mix.
				errOK := a.Authorize(idB, "/v1/status")
				errDenied := a.Authorize(idB, "/v1/status/x")
				if !errors.Is(errDenied, kes.ErrNotAllowed) || (errOK != nil && !errors.Is(errOK, kes.ErrNotAllowed)) {
					t.Errorf("idB: %v, %v", errOK, errDenied)
					return
				}
				if i%16 == 0 {
					if _, err := a.ListIdentities("*"); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for range rounds {
				if err := a.WritePolicy(admin, "ops", []string{"/v1/status*"}, []string{"/v1/status/*"}); err != nil {
					t.Error(err)
					return
				}
				if err := a.Assign(admin, "ops", idB); err != nil && !errors.Is(err, kes.ErrPolicyNotFound) {
					t.Error(err)
					return
				}
				if w == 1 {
					if err := a.DeletePolicy(admin, "ops"); err != nil && !errors.Is(err, kes.ErrPolicyNotFound) {
						t.Error(err)
						return
					}
				} else if err := a.DeleteIdentity(admin, idB); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	wg.Wait()
}

// TestCheckDelegated: the routes that change policies and assignments are
// open to the admin and to a policy that names the exact path; a wildcard
// that matches them (harmless on upstream, where they answer 404) never
// grants them, and a deny pattern still wins.
func TestCheckDelegated(t *testing.T) {
	a, err := auth.New(admin, map[string]auth.PolicyConfig{
		"reader": {
			Allow:      []string{"/v1/policy/*", "/v1/identity/*", "/v1/policy/write/*", "/*", "/v1/policy/write/ap?", "/v1/identity/delete/" + string(idB) + "*"},
			Identities: []kes.Identity{idA},
		},
		"ops": {
			Allow:      []string{"/v1/policy/write/tenant", "/v1/identity/assign/tenant/" + string(idA), "/v1/policy/delete/*"},
			Deny:       []string{"/v1/policy/write/tenant"},
			Identities: []kes.Identity{idB},
		},
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id   kes.Identity
		path string
		want error
	}{
		{admin, "/v1/policy/write/app", nil},
		{admin, "/v1/identity/delete/" + string(idA), nil},
		{idA, "/v1/policy/write/app", kes.ErrNotAllowed},
		{idA, "/v1/policy/assign/app", kes.ErrNotAllowed},
		{idA, "/v1/identity/delete/" + string(idB), kes.ErrNotAllowed},
		{idB, "/v1/identity/assign/tenant/" + string(idA), nil},
		{idB, "/v1/policy/write/tenant", kes.ErrNotAllowed}, // denied
		{idB, "/v1/policy/delete/reader", kes.ErrNotAllowed},
		{idC, "/v1/policy/write/app", kes.ErrNotAllowed},
		{"", "/v1/policy/write/app", kes.ErrNotAllowed},
	} {
		if _, err := a.CheckDelegated(tt.id, tt.path); err != tt.want {
			t.Errorf("CheckDelegated(%.8s, %s) = %v, want %v", tt.id, tt.path, err, tt.want)
		}
	}
	// The same wildcard grants the read routes through Check.
	if err := a.Authorize(idA, "/v1/policy/describe/app"); err != nil {
		t.Errorf("Authorize(idA, describe): %v", err)
	}
}

// TestSelfPolicy: no identity but the admin writes or deletes the policy
// that governs it, or removes its own assignment, even when its policy
// names the route (upstream let it rewrite its policy to allow "/*").
func TestSelfPolicy(t *testing.T) {
	a := mustNew(t) // idA holds "app"
	if err := a.WritePolicy(idA, "app", []string{"/*"}, nil); !errors.Is(err, auth.ErrSelfPolicy) {
		t.Errorf("WritePolicy(own): %v", err)
	}
	if err := a.DeletePolicy(idA, "app"); !errors.Is(err, auth.ErrSelfPolicy) {
		t.Errorf("DeletePolicy(own): %v", err)
	}
	if err := a.DeleteIdentity(idA, idA); !errors.Is(err, auth.ErrSelfPolicy) {
		t.Errorf("DeleteIdentity(self): %v", err)
	}
	if p, _ := a.PolicyOf(idA); !slices.Equal(p.Allow, []string{"/v1/key/generate/app-*"}) {
		t.Errorf("own policy changed: %+v", p)
	}
	// Another policy, and the admin on any policy, are fine.
	if err := a.WritePolicy(idA, "other", []string{"/v1/status"}, nil); err != nil {
		t.Errorf("WritePolicy(other): %v", err)
	}
	if err := a.WritePolicy(admin, "app", []string{"/v1/status"}, nil); err != nil {
		t.Errorf("admin WritePolicy(app): %v", err)
	}
	if auth.ErrSelfPolicy.Status != 403 {
		t.Errorf("ErrSelfPolicy status %d", auth.ErrSelfPolicy.Status)
	}
}
