package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

// minioServerPolicy is the policy the KES documentation gives the MinIO
// server's identity.
var minioServerPolicy = []string{
	"/v1/key/create/*",
	"/v1/key/generate/*",
	"/v1/key/decrypt/*",
	"/v1/key/bulk/decrypt",
	"/v1/key/list/*",
	"/v1/status",
	"/v1/metrics",
	"/v1/log/audit",
	"/v1/log/error",
}

// listAuthServer is a server with keys my-a, my-b and other, and one
// non-admin identity per policy: minio-server (the documented MinIO
// policy), lister (may list everything of every kind) and my-narrow (may
// list only keys and policies starting with "my-" and identities starting
// with its own first four characters).
type listAuthServer struct {
	*testServer
	ids        map[string]kes.APIKey // policy name → its identity's API key
	keys       []string
	policies   []string
	identities []kes.Identity
}

func startListAuthServer(t *testing.T) *listAuthServer {
	t.Helper()
	admin := generateAPIKey(t)
	s := &listAuthServer{ids: map[string]kes.APIKey{}}
	for _, name := range []string{"minio-server", "lister", "my-narrow"} {
		s.ids[name] = generateAPIKey(t)
	}
	narrowID := s.ids["my-narrow"].Identity()
	policies := map[string]auth.PolicyConfig{
		"minio-server": {Allow: minioServerPolicy},
		"lister":       {Allow: []string{"/v1/key/list/*", "/v1/policy/list/*", "/v1/identity/list/*"}},
		"my-narrow": {Allow: []string{
			"/v1/key/list/my-*", "/v1/policy/list/my-*", "/v1/identity/list/" + string(narrowID[:4]) + "*",
		}},
	}
	s.identities = []kes.Identity{admin.Identity()}
	for name, key := range s.ids {
		p := policies[name]
		p.Identities = []kes.Identity{key.Identity()}
		policies[name] = p
		s.policies = append(s.policies, name)
		s.identities = append(s.identities, key.Identity())
	}
	slices.Sort(s.policies)
	slices.Sort(s.identities)
	s.testServer = startServer(t, serverOptions{admin: admin.Identity(), policies: policies})

	c := s.client(t, apiKeyCert(t, admin.Secret()), false)
	s.keys = []string{"my-a", "my-b", "other"}
	for _, k := range s.keys {
		if r := do(t, c, http.MethodPut, s.URL+"/v1/key/create/"+k, nil); r.Status != http.StatusOK {
			t.Fatalf("create %s: %d %s", k, r.Status, r.Body)
		}
	}
	return s
}

func generateAPIKey(t *testing.T) kes.APIKey {
	t.Helper()
	k, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withPrefix[N ~string](names []N, prefix string) []N {
	return slices.DeleteFunc(slices.Clone(names), func(n N) bool { return !strings.HasPrefix(string(n), prefix) })
}

// listCase is one listing request and its expected outcome: 200 with
// the names, or 403 not authorized.
type listCase struct {
	path    string
	allowed bool
	want    []string
}

// cases returns the listing requests of the identity of policy against
// kind ("key", "policy", "identity"): without the slash, with it, with
// "*", and with prefixes the narrow policy does and does not allow.
func (s *listAuthServer) cases(policy, kind string) []listCase {
	var all []string
	allowed, refused := "my-*", "my" // my-narrow allows my-*, not my
	switch kind {
	case "key":
		all = s.keys
	case "policy":
		all = s.policies
	case "identity":
		for _, id := range s.identities {
			all = append(all, string(id))
		}
		p := string(s.ids["my-narrow"].Identity()[:4])
		allowed, refused = p+"*", p[:3]
	}
	base := "/v1/" + kind + "/list"
	everything := policy == "lister" || policy == "minio-server" && kind == "key"
	narrow := policy == "my-narrow"
	return []listCase{
		{base, everything, all},
		{base + "/", everything, all},
		{base + "/*", everything, all},
		{base + "/" + allowed, everything || narrow, withPrefix(all, strings.TrimSuffix(allowed, "*"))},
		{base + "/" + refused, everything, withPrefix(all, refused)},
		{base + "/x", everything, withPrefix(all, "x")},
	}
}

// TestListWithoutSlash: GET /v1/<kind>/list, without the trailing slash
// (MinIO's kms-go lists keys so), is authorized exactly as /v1/<kind>/list/
// with an empty pattern: the documented minio-server policy, which allows
// /v1/key/list/*, lists every key through it, and a policy that allows
// only /v1/key/list/my-* lists nothing through it. Raw HTTP/1.1 and HTTP/2
// requests that do not follow redirects, over the real TLS listener.
func TestListWithoutSlash(t *testing.T) {
	s := startListAuthServer(t)
	for policy, key := range s.ids {
		for _, h2 := range []bool{false, true} {
			c := s.client(t, apiKeyCert(t, key.Secret()), h2)
			for _, kind := range []string{"key", "policy", "identity"} {
				for _, tc := range s.cases(policy, kind) {
					r := do(t, c, http.MethodGet, s.URL+tc.path, nil)
					if !tc.allowed {
						if r.Status != http.StatusForbidden || errorMessage(t, r) != "not authorized: insufficient permissions" {
							t.Errorf("%s (h2 %v) GET %s: %d %s, want 403", policy, h2, tc.path, r.Status, r.Body)
						}
						continue
					}
					if got := listed(t, kind, r); r.Status != http.StatusOK || !slices.Equal(got, tc.want) {
						t.Errorf("%s (h2 %v) GET %s: %d %q, want 200 %q", policy, h2, tc.path, r.Status, got, tc.want)
					}
				}
			}
		}
	}
}

// listed returns the names of a listing response body.
func listed(t *testing.T, kind string, r response) []string {
	t.Helper()
	if r.Status != http.StatusOK {
		return nil
	}
	var body struct {
		Names      []string `json:"names"`
		Identities []string `json:"identities"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("list %s: %q: %v", kind, r.Body, err)
	}
	if kind == "identity" {
		return body.Identities
	}
	return body.Names
}

// TestListSDKPolicies: the SDK lists with the documented minio-server
// policy, and what a policy does not allow comes back as ErrNotAllowed.
func TestListSDKPolicies(t *testing.T) {
	s := startListAuthServer(t)
	ctx := context.Background()
	for policy, key := range s.ids {
		client, err := kes.NewClient([]string{s.URL}, kes.WithAPIKey(key), kes.WithInsecureSkipVerify())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		for _, kind := range []string{"key", "policy", "identity"} {
			for _, tc := range s.cases(policy, kind) {
				prefix, ok := strings.CutPrefix(tc.path, "/v1/"+kind+"/list/")
				if !ok || strings.HasSuffix(prefix, "-*") {
					// The SDK always sends the slash, and it strips the
					// '*', which leaves an invalid pattern ("my-"): as
					// upstream, key listings take no '*' (spec api.md §4.6).
					continue
				}
				got, err := sdkList(ctx, client, kind, prefix)
				switch {
				case !tc.allowed && !errors.Is(err, kes.ErrNotAllowed):
					t.Errorf("%s: SDK list %s %q: %q, %v; want ErrNotAllowed", policy, kind, prefix, got, err)
				case tc.allowed && (err != nil || !slices.Equal(got, tc.want)):
					t.Errorf("%s: SDK list %s %q: %q, %v; want %q", policy, kind, prefix, got, err, tc.want)
				}
			}
		}
	}
}

func sdkList(ctx context.Context, c *kes.Client, kind, prefix string) ([]string, error) {
	var names []string
	collect := func(n string, err error) error {
		if err == nil {
			names = append(names, n)
		}
		return err
	}
	var err error
	switch kind {
	case "key":
		for n, e := range c.ListKeys(ctx, prefix) {
			err = collect(n, e)
		}
	case "policy":
		for n, e := range c.ListPolicies(ctx, prefix) {
			err = collect(n, e)
		}
	case "identity":
		for n, e := range c.ListIdentities(ctx, prefix) {
			err = collect(string(n), e)
		}
	}
	return names, err
}
