package auth_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/openkes/kes/internal/auth"
)

func TestPolicyAllows(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		path        string
		want        bool
	}{
		{"empty-policy", nil, nil, "/v1/status", false},
		{"empty-pattern", []string{""}, nil, "/v1/status", false},
		{"exact", []string{"/v1/status"}, nil, "/v1/status", true},
		{"exact-other", []string{"/v1/status"}, nil, "/v1/status/x", false},
		{"prefix", []string{"/v1/key/*"}, nil, "/v1/key/create/x", true},
		{"prefix-empty-rest", []string{"/v1/key/create/*"}, nil, "/v1/key/create/", true},
		{"star-all", []string{"*"}, nil, "/v1/anything/at/all", true},
		{"legacy-segment-glob", []string{"/v1/key/*/my-key"}, nil, "/v1/key/decrypt/my-key", true},
		{"legacy-glob-other-key", []string{"/v1/key/*/my-key"}, nil, "/v1/key/decrypt/other", false},
		{"literal-star-exact", []string{"/v1/key/*/my-key"}, nil, "/v1/key/*/my-key", true},
		{"legacy-question", []string{"/v1/key/create/k?"}, nil, "/v1/key/create/k1", true},
		{"legacy-class", []string{"/v1/key/create/[ab]"}, nil, "/v1/key/create/b", true},
		{"malformed-glob-literal", []string{"/v1/key/create/[a"}, nil, "/v1/key/create/[a", true},
		{"malformed-glob-no-legacy", []string{"/v1/key/create/[a"}, nil, "/v1/key/create/a", false},
		{"list-argument", []string{"/v1/key/list/*"}, nil, "/v1/key/list/*", true},
		{"deny-wins", []string{"/v1/key/*"}, []string{"/v1/key/delete/*"}, "/v1/key/delete/k", false},
		{"deny-other", []string{"/v1/key/*"}, []string{"/v1/key/delete/*"}, "/v1/key/create/k", true},
		{"deny-only", nil, []string{"/v1/key/delete/*"}, "/v1/key/create/k", false},
		{"deny-legacy-glob", []string{"/v1/key/*"}, []string{"/v1/key/*/secret"}, "/v1/key/decrypt/secret", false},
		{"deny-exact", []string{"*"}, []string{"/v1/status"}, "/v1/status", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auth.NewPolicy(tt.allow, tt.deny).Allows(tt.path); got != tt.want {
				t.Errorf("Allows(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestPolicyZero(t *testing.T) {
	var nilPolicy *auth.Policy
	for _, p := range []*auth.Policy{nilPolicy, {}} {
		if p.Allows("/v1/status") || p.Allows("") {
			t.Errorf("%#v allows", p)
		}
		if p.Allow() != nil || p.Deny() != nil {
			t.Errorf("%#v has patterns", p)
		}
	}
}

func TestPolicyPatterns(t *testing.T) {
	allow := []string{"/v1/key/*", "/v1/status", "/v1/key/*"}
	deny := []string{"/v1/key/delete/*"}
	p := auth.NewPolicy(allow, deny)
	allow[0], deny[0] = "changed", "changed" // NewPolicy copied them
	if got := p.Allow(); !slices.Equal(got, []string{"/v1/key/*", "/v1/status", "/v1/key/*"}) {
		t.Errorf("Allow() = %q", got)
	}
	if got := p.Deny(); !slices.Equal(got, []string{"/v1/key/delete/*"}) {
		t.Errorf("Deny() = %q", got)
	}
	p.Allow()[0] = "changed" // the caller owns the result
	if p.Allow()[0] != "/v1/key/*" || !p.Allows("/v1/key/create/k") || p.Allows("/v1/key/delete/k") {
		t.Error("policy changed through its results")
	}
}

// minioPolicy is a policy as MinIO deployments configure it: the SSE routes
// as prefixes, the status routes exactly, and one legacy segment glob.
func minioPolicy() *auth.Policy {
	return auth.NewPolicy([]string{
		"/v1/key/create/*",
		"/v1/key/generate/*",
		"/v1/key/decrypt/*",
		"/v1/key/encrypt/*",
		"/v1/key/delete/*",
		"/v1/key/describe/*",
		"/v1/key/list/*",
		"/v1/status",
		"/v1/metrics",
		"/v1/api",
		"/v1/ready",
		"/v1/log/audit",
		"/v1/key/*/minio-legacy",
	}, []string{
		"/v1/key/delete/minio-default-key",
	})
}

func TestMinIOPolicy(t *testing.T) {
	p := minioPolicy()
	for path, want := range map[string]bool{
		"/v1/key/generate/minio-default-key": true,
		"/v1/key/decrypt/minio-default-key":  true,
		"/v1/key/delete/minio-default-key":   false,
		"/v1/key/delete/other":               true,
		"/v1/key/hmac/minio-legacy":          true,
		"/v1/key/hmac/other":                 false,
		"/v1/status":                         true,
		"/v1/policy/list/*":                  false,
	} {
		if got := p.Allows(path); got != want {
			t.Errorf("Allows(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestPolicyAllowsAllocs(t *testing.T) {
	p := minioPolicy()
	paths := []string{"/v1/key/generate/minio-default-key", "/v1/status", "/v1/key/hmac/minio-legacy", "/v1/policy/list/*"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, path := range paths {
			p.Allows(path)
		}
	})
	if allocs != 0 {
		t.Errorf("Allows allocates %v times", allocs)
	}
}

func BenchmarkAllows(b *testing.B) {
	p := minioPolicy()
	for _, path := range []string{
		"/v1/key/generate/minio-default-key", // prefix
		"/v1/status",                         // exact
		"/v1/key/hmac/minio-legacy",          // legacy glob
		"/v1/policy/list/*",                  // rejected after every check
		"/v1/key/delete/minio-default-key",   // denied
	} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				p.Allows(path)
			}
		})
	}
}

func ExamplePolicy_Allows() {
	p := auth.NewPolicy(
		[]string{"/v1/key/generate/my-app-*", "/v1/key/*/shared-key"},
		[]string{"/v1/key/generate/my-app-internal*"},
	)
	fmt.Println(p.Allows("/v1/key/generate/my-app-1"))
	fmt.Println(p.Allows("/v1/key/decrypt/shared-key"))
	fmt.Println(p.Allows("/v1/key/generate/my-app-internal-1"))
	// Output:
	// true
	// true
	// false
}
