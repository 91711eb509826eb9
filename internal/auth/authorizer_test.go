package auth_test

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

const (
	admin = kes.Identity("538973a3f617c8b166cbae1eeed53e121c8bebde136db0c67ab664a0110c8d5d")
	idA   = kes.Identity("2bd948d5849994c576282da8e8c435d443ca160e3e8ed9895c84004e743abae3")
	idB   = kes.Identity("0970ec9a7901ff1d683265a27ce418d6990beb8c8711ed3ff0ae45a2d25c4b2f")
	idC   = kes.Identity("4db0aa59ce97df71e42a240719242ea818641516d28d2a19df0963f5380b284f")
)

var start = time.Date(2026, 11, 27, 16, 14, 36, 151737993, time.UTC)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name     string
		admin    kes.Identity
		policies map[string]auth.PolicyConfig
		want     error
		text     string
	}{
		{
			name:  "empty-admin",
			admin: "",
			want:  auth.ErrNoAdmin,
			text:  "auth: admin identity is empty",
		},
		{
			name:     "invalid-policy-name",
			admin:    admin,
			policies: map[string]auth.PolicyConfig{"bad.name": {}},
			want:     kes.ErrInvalidPolicyName("bad.name"),
			text:     "kes: policy name 'bad.name' is empty, too long or contains invalid characters",
		},
		{
			name:     "invalid-identity",
			admin:    admin,
			policies: map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{"_"}}},
			want:     kes.ErrInvalidIdentity("_"),
			text:     "kes: identity '_' is empty, too long or contains invalid characters",
		},
		{
			name:     "empty-identity",
			admin:    admin,
			policies: map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{""}}},
			want:     kes.ErrInvalidIdentity(""),
			text:     "kes: identity '' is empty, too long or contains invalid characters",
		},
		{
			name:     "identity-is-admin",
			admin:    admin,
			policies: map[string]auth.PolicyConfig{"p": {Identities: []kes.Identity{idA, admin}}},
			want:     auth.ErrAdminInPolicy,
			text:     "kesconf: invalid policy 'p': identity '" + string(admin) + "' is already admin",
		},
		{
			name:  "identity-in-two-policies",
			admin: admin,
			policies: map[string]auth.PolicyConfig{
				"b": {Identities: []kes.Identity{idA}},
				"a": {Identities: []kes.Identity{idB, idA}},
			},
			want: auth.ErrHasPolicy,
			text: "kes: cannot assign policy 'b' to '" + string(idA) + "': identity already has a policy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(tt.admin, tt.policies, start)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text { // config error text is API
				t.Errorf("text: got %q, want %q", err, tt.text)
			}
			if a != nil {
				t.Error("got an Authorizer with the error")
			}
		})
	}
}

func TestNewDuplicateInOnePolicy(t *testing.T) {
	a, err := auth.New(admin, map[string]auth.PolicyConfig{
		"p": {Allow: []string{"/v1/status"}, Identities: []kes.Identity{idA, idA}},
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize(idA, "/v1/status"); err != nil {
		t.Error(err)
	}
}

// newProbe returns the Authorizer of the server that produced the vectors
// (vectors README, "Server configuration used").
func newProbe(t *testing.T) *auth.Authorizer {
	t.Helper()
	a, err := auth.New(admin, map[string]auth.PolicyConfig{
		"probe": {
			Allow: []string{
				"/v1/key/create/vec-probe-*",
				"/v1/key/delete/vec-probe-*",
				"/v1/key/describe/vec-probe-*",
			},
			Deny: []string{"/v1/key/create/vec-probe-denied*"},
			Identities: []kes.Identity{
				"2bd948d5849994c576282da8e8c435d443ca160e3e8ed9895c84004e743abae3",
				"0970ec9a7901ff1d683265a27ce418d6990beb8c8711ed3ff0ae45a2d25c4b2f",
				"4db0aa59ce97df71e42a240719242ea818641516d28d2a19df0963f5380b284f",
				"e209bb13b678c4a7463ec389bf039714bc778efe09d54ef1d259ae6045448527",
				"cb8e69d31b26ab95c43aeda2cfa375817e8ea111dcf472eb72cc1e0fe4bdeec1",
				"015a9cd70d0cf226ca9bcdecba837a3d52e8d843a9ee9571c70cdb03f776c93f",
				"aeb84fdc4ed6fc04eb3895b603f8da0d8fc1a0cd429dac1a66c3f12bdfe93f06",
			},
		},
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// vectorIdentity resolves an identity label of describe.jsonl.
func vectorIdentity(t *testing.T, label string) kes.Identity {
	t.Helper()
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	switch label {
	case "admin":
		return keys[0].Identity
	case "apikey2":
		return keys[1].Identity
	case "apikey3":
		return keys[2].Identity
	}
	id, err := identifyFile(t, "identities/"+label+".crt")
	if err != nil {
		t.Fatalf("identity %s: %v", label, err)
	}
	return id
}

func TestProbeVectors(t *testing.T) {
	type describeVector struct {
		Case    string `json:"case"`
		Request struct {
			Method   string `json:"method"`
			Path     string `json:"path"`
			Identity string `json:"identity"`
		} `json:"request"`
		Status int `json:"status"`
	}
	a := newProbe(t)
	if got := vectorIdentity(t, "admin"); got != admin {
		t.Fatalf("admin of the vectors is %s, want %s", got, admin)
	}
	var denied int
	for i, v := range vectors.ReadJSONL[describeVector](t, "describe.jsonl") {
		t.Run(fmt.Sprintf("%02d-%s", i+1, v.Case), func(t *testing.T) {
			u, err := url.Parse(v.Request.Path)
			if err != nil {
				t.Fatal(err)
			}
			id := vectorIdentity(t, v.Request.Identity)
			policy, err := a.Check(id, u.Path)
			switch {
			case v.Status == 403:
				denied++
				if !errors.Is(err, kes.ErrNotAllowed) {
					t.Errorf("%s %s by %s: got %v, want ErrNotAllowed", v.Request.Method, u.Path, v.Request.Identity, err)
				}
				wantPolicy := "probe"
				if v.Request.Identity == "unassigned-ecdsa-p384" {
					wantPolicy = ""
				}
				if policy != wantPolicy {
					t.Errorf("policy: got %q, want %q", policy, wantPolicy)
				}
			case id == admin:
				if err != nil {
					t.Errorf("admin %s %s: %v", v.Request.Method, u.Path, err)
				}
			case u.Path == "/v1/identity/self/describe":
				// identify-only route: the policy is not consulted.
			default:
				t.Fatalf("unexpected vector: %s %s by %s -> %d", v.Request.Method, u.Path, v.Request.Identity, v.Status)
			}
		})
	}
	if denied != 5 {
		t.Errorf("checked %d 403 vectors, want 5", denied)
	}
}

func TestProbeIdentities(t *testing.T) {
	a := newProbe(t)
	for _, v := range vectors.ReadJSONL[identityVector](t, "identities/identities.jsonl") {
		assigned := v.CertFile != "identities/unassigned-ecdsa-p384.crt"
		t.Run(v.CertFile, func(t *testing.T) {
			for _, path := range []string{
				"/v1/key/create/vec-probe-1",
				"/v1/key/describe/vec-probe-1",
				"/v1/key/delete/vec-probe-1",
			} {
				err := a.Authorize(v.Identity, path)
				if assigned && err != nil {
					t.Errorf("%s: %v", path, err)
				}
				if !assigned && !errors.Is(err, kes.ErrNotAllowed) {
					t.Errorf("%s: got %v, want ErrNotAllowed", path, err)
				}
			}
			if err := a.Authorize(v.Identity, "/v1/key/create/vec-probe-denied-2"); !errors.Is(err, kes.ErrNotAllowed) {
				t.Errorf("denied create: got %v, want ErrNotAllowed", err)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	a, err := auth.New(admin, map[string]auth.PolicyConfig{
		"app":   {Allow: []string{"/v1/key/*"}, Deny: []string{"/v1/key/delete/*"}, Identities: []kes.Identity{idA}},
		"empty": {Identities: []kes.Identity{idB}},
	}, start)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		id         kes.Identity
		path       string
		wantPolicy string
		wantErr    error
	}{
		{"admin", admin, "/v1/policy/list/*", "", nil},
		{"allowed", idA, "/v1/key/create/k", "app", nil},
		{"denied", idA, "/v1/key/delete/k", "app", kes.ErrNotAllowed},
		{"not-allowed", idA, "/v1/status", "app", kes.ErrNotAllowed},
		{"empty-policy", idB, "/v1/status", "empty", kes.ErrNotAllowed},
		{"unknown", idC, "/v1/status", "", kes.ErrNotAllowed},
		{"empty-identity", "", "/v1/status", "", kes.ErrNotAllowed},
		{"admin-case-sensitive", kes.Identity("538973A3F617C8B166CBAE1EEED53E121C8BEBDE136DB0C67AB664A0110C8D5D"), "/v1/status", "", kes.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy, err := a.Check(tt.id, tt.path)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("err: got %v, want %v", err, tt.wantErr)
			}
			if policy != tt.wantPolicy {
				t.Errorf("policy: got %q, want %q", policy, tt.wantPolicy)
			}
			if err2 := a.Authorize(tt.id, tt.path); err2 != err {
				t.Errorf("Authorize = %v, Check = %v", err2, err)
			}
		})
	}
	if !a.IsAdmin(admin) || a.IsAdmin(idA) || a.IsAdmin("") || a.Admin() != admin {
		t.Error("IsAdmin/Admin")
	}
}

func TestAuthorizeAllocs(t *testing.T) {
	a := newProbe(t)
	allocs := testing.AllocsPerRun(100, func() {
		_ = a.Authorize(idA, "/v1/key/create/vec-probe-1")
		_ = a.Authorize(idA, "/v1/key/create/other")
		_ = a.Authorize(idC, "/v1/status")
		_ = a.Authorize(admin, "/v1/status")
	})
	if allocs != 0 {
		t.Errorf("Authorize allocates %v times", allocs)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	a, err := auth.New(admin, map[string]auth.PolicyConfig{
		"minio": {Allow: minioPolicy().Allow(), Deny: minioPolicy().Deny(), Identities: []kes.Identity{idA}},
	}, start)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = a.Authorize(idA, "/v1/key/generate/minio-default-key")
	}
}

// identifyFile is IdentifyTLS over all certificates of a vector file.
func identifyFile(t *testing.T, name string) (kes.Identity, error) {
	t.Helper()
	return identifyCerts(readCerts(t, name))
}

func TestListPattern(t *testing.T) {
	a := newProbe(t)
	for _, pattern := range []string{"a*b", "**", "-x", "bad.name"} {
		if _, err := a.ListPolicies(pattern); !errors.Is(err, kes.ErrInvalidPattern(pattern)) {
			t.Errorf("ListPolicies(%q): got %v", pattern, err)
		}
		if _, err := a.ListIdentities(pattern); !errors.Is(err, kes.ErrInvalidPattern(pattern)) {
			t.Errorf("ListIdentities(%q): got %v", pattern, err)
		}
	}
	ids, err := a.ListIdentities("*")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 8 || !slices.IsSorted(ids) || !slices.Contains(ids, admin) {
		t.Errorf("ListIdentities(*) = %v", ids)
	}
	for pattern, want := range map[string][]kes.Identity{
		"5389":  {admin},
		"0*":    {"015a9cd70d0cf226ca9bcdecba837a3d52e8d843a9ee9571c70cdb03f776c93f", idB},
		"ffff*": {},
	} {
		got, err := a.ListIdentities(pattern)
		if err != nil || !slices.Equal(got, want) || got == nil {
			t.Errorf("ListIdentities(%q) = %#v, %v; want %v", pattern, got, err, want)
		}
	}
}

func TestDescribeErrors(t *testing.T) {
	a := newProbe(t)
	if _, err := a.DescribePolicy("bad.name"); !errors.Is(err, kes.ErrInvalidPolicyName("bad.name")) {
		t.Errorf("DescribePolicy(bad.name): %v", err)
	}
	if _, err := a.DescribePolicy("nosuchpolicy"); !errors.Is(err, kes.ErrPolicyNotFound) {
		t.Errorf("DescribePolicy(nosuchpolicy): %v", err)
	}
	if _, err := a.DescribeIdentity("_"); !errors.Is(err, kes.ErrInvalidIdentity("_")) {
		t.Errorf("DescribeIdentity(_): %v", err)
	}
	unassigned := kes.Identity("b5c7fb0a4ce7fb0d9c35b8c1105bd0ab26327739d43d22890ff5c18195feb3f4")
	if _, err := a.DescribeIdentity(unassigned); !errors.Is(err, kes.ErrIdentityNotFound) {
		t.Errorf("DescribeIdentity(unassigned): %v", err)
	}
	if _, err := a.PolicyOf(admin); !errors.Is(err, kes.ErrIdentityNotFound) {
		t.Errorf("PolicyOf(admin): %v", err)
	}
	info, err := a.DescribeIdentity(admin)
	if err != nil || info != (auth.IdentityInfo{Identity: admin, IsAdmin: true, CreatedAt: start}) {
		t.Errorf("DescribeIdentity(admin) = %+v, %v", info, err)
	}
	info, err = a.DescribeIdentity(idC)
	if err != nil || info != (auth.IdentityInfo{Identity: idC, Policy: "probe", CreatedAt: start, CreatedBy: admin}) {
		t.Errorf("DescribeIdentity(%s) = %+v, %v", idC, info, err)
	}
	p, err := a.DescribePolicy("probe")
	if err != nil || p.Name != "probe" || !p.CreatedAt.Equal(start) || p.CreatedBy != admin ||
		len(p.Allow) != 3 || !slices.Equal(p.Deny, []string{"/v1/key/create/vec-probe-denied*"}) {
		t.Errorf("DescribePolicy(probe) = %+v, %v", p, err)
	}
	names, err := a.ListPolicies("*")
	if err != nil || !slices.Equal(names, []string{"probe"}) {
		t.Errorf("ListPolicies(*) = %v, %v", names, err)
	}
}
