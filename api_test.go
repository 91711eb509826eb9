package kes_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/openkes/kes"
)

const testIdentity = kes.Identity("a050837d85070582ccf7394b0988847cc312cb88259b894899f6f239cf1791a5")

// TestAPI calls every method against a fake server and checks the request
// (method, path, body) and the decoded response.
func TestAPI(t *testing.T) {
	created := time.Date(2024, 1, 12, 10, 39, 20, 886816000, time.UTC)
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *kes.Client) (any, error)
		method   string
		path     string
		reqBody  string // JSON; empty means no body
		respBody string
		want     any
	}{
		{
			name:   "Version",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.Version(ctx) },
			method: "GET", path: "/version",
			respBody: `{"version":"2025-03-12T09-35-18Z","commit":"0123"}`,
			want:     &kes.VersionResponse{Version: "2025-03-12T09-35-18Z", Commit: "0123"},
		},
		{
			name:   "Status",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.Status(ctx) },
			method: "GET", path: "/v1/status",
			respBody: `{"version":"v","os":"linux","arch":"amd64","uptime":7,"num_cpu":2,"num_cpu_used":1,"mem_heap_used":10,"mem_stack_used":20,"keystore_latency":1,"keystore_unreachable":true,"keystore_unavailable":true}`,
			want: &kes.StatusResponse{Version: "v", OS: "linux", Arch: "amd64", UpTime: 7, CPUs: 2, UsableCPUs: 1, HeapAlloc: 10, StackAlloc: 20,
				KeyStoreLatency: 1, KeyStoreUnreachable: true, KeyStoreUnavailable: true},
		},
		{
			name:   "IsReady",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.IsReady(ctx) },
			method: "GET", path: "/v1/ready",
		},
		{
			name:   "APIs",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.APIs(ctx) },
			method: "GET", path: "/v1/api",
			respBody: `[{"method":"PUT","path":"/v1/key/import/","max_body":1000000,"timeout":15}]`,
			want:     []kes.API{{Method: "PUT", Path: "/v1/key/import/", MaxBody: 1000000, Timeout: 15}},
		},
		{
			name:   "CreateKey",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.CreateKey(ctx, "my-key") },
			method: "POST", path: "/v1/key/create/my-key",
		},
		{
			name: "ImportKey",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.ImportKey(ctx, "my-key", make([]byte, 32), kes.ChaCha20)
			},
			method: "POST", path: "/v1/key/import/my-key",
			reqBody: `{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","cipher":"ChaCha20"}`,
		},
		{
			name:   "DescribeKey",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeKey(ctx, "my-key") },
			method: "GET", path: "/v1/key/describe/my-key",
			respBody: `{"name":"my-key","algorithm":"AES256","created_at":"2024-01-12T10:39:20.886816Z","created_by":"` + string(testIdentity) + `"}`,
			want:     &kes.DescribeKeyResponse{Name: "my-key", Algorithm: kes.AES256, CreatedAt: created, CreatedBy: testIdentity},
		},
		{
			name:   "DeleteKey",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.DeleteKey(ctx, "my-key") },
			method: "DELETE", path: "/v1/key/delete/my-key",
		},
		{
			name:   "GenerateKey without context",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.GenerateKey(ctx, "my-key", nil) },
			method: "POST", path: "/v1/key/generate/my-key", reqBody: `{}`,
			respBody: `{"plaintext":"AQI=","ciphertext":"AwQ="}`,
			want:     &kes.GenerateKeyResponse{Plaintext: []byte{1, 2}, Ciphertext: []byte{3, 4}},
		},
		{
			name: "GenerateKey with context",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return c.GenerateKey(ctx, "my-key", []byte("ctx"))
			},
			method: "POST", path: "/v1/key/generate/my-key", reqBody: `{"context":"Y3R4"}`,
			respBody: `{"plaintext":"AQI=","ciphertext":"AwQ="}`,
			want:     &kes.GenerateKeyResponse{Plaintext: []byte{1, 2}, Ciphertext: []byte{3, 4}},
		},
		{
			name:   "RotateKey",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.RotateKey(ctx, "my-key") },
			method: "PUT", path: "/v1/key/rotate/my-key",
			respBody: `{"name":"my-key","version":3}`,
			want:     3,
		},
		{
			name:   "ListKeyVersions",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.ListKeyVersions(ctx, "my-key") },
			method: "GET", path: "/v1/key/versions/my-key",
			respBody: `{"name":"my-key","current":2,"versions":[{"version":1,"algorithm":"AES256","created_at":"2024-01-12T10:39:20.886816Z","disabled":true},{"version":2,"algorithm":"AES256","created_at":"2024-01-12T10:39:20.886816Z","current":true}]}`,
			want: &kes.ListKeyVersionsResponse{Name: "my-key", Current: 2, Versions: []kes.KeyVersion{
				{Version: 1, Algorithm: "AES256", CreatedAt: created, Disabled: true},
				{Version: 2, Algorithm: "AES256", CreatedAt: created, Current: true},
			}},
		},
		{
			name: "DisableKeyVersion",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.DisableKeyVersion(ctx, "my-key", 1)
			},
			method: "PUT", path: "/v1/key/disable/my-key", reqBody: `{"version":1}`,
		},
		{
			name: "EnableKeyVersion",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.EnableKeyVersion(ctx, "my-key", 1)
			},
			method: "PUT", path: "/v1/key/enable/my-key", reqBody: `{"version":1}`,
		},
		{
			name: "EncryptVersion",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				ct, v, err := c.EncryptVersion(ctx, "my-key", 2, []byte("hi"), nil)
				return []any{ct, v}, err
			},
			method: "POST", path: "/v1/key/encrypt/my-key", reqBody: `{"plaintext":"aGk=","version":"2"}`,
			respBody: `{"ciphertext":"AwQ=","version":"2"}`,
			want:     []any{[]byte{3, 4}, 2},
		},
		{
			name: "Rewrap",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return c.Rewrap(ctx, "my-key", []byte{1, 2}, []byte("ctx"))
			},
			method: "PUT", path: "/v1/key/rewrap/my-key", reqBody: `{"ciphertext":"AQI=","context":"Y3R4"}`,
			respBody: `{"ciphertext":"AwQ=","version":2}`,
			want:     &kes.RewrapResponse{Ciphertext: []byte{3, 4}, Version: 2},
		},
		{
			name: "BulkRewrap",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return c.BulkRewrap(ctx, "my-key", []kes.RewrapItem{{Ciphertext: []byte{1, 2}}, {Ciphertext: []byte{5}, Context: []byte("ctx")}})
			},
			method: "PUT", path: "/v1/key/bulk/rewrap/my-key", reqBody: `{"ciphertexts":[{"ciphertext":"AQI="},{"ciphertext":"BQ==","context":"Y3R4"}]}`,
			respBody: `{"ciphertexts":["AwQ=","BgY="],"version":2}`,
			want:     &kes.BulkRewrapResponse{Ciphertexts: [][]byte{{3, 4}, {6, 6}}, Version: 2},
		},
		{
			name: "Encrypt",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return c.Encrypt(ctx, "my-key", []byte("hi"), nil)
			},
			method: "POST", path: "/v1/key/encrypt/my-key", reqBody: `{"plaintext":"aGk="}`,
			respBody: `{"ciphertext":"AwQ="}`,
			want:     []byte{3, 4},
		},
		{
			name: "Decrypt",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return c.Decrypt(ctx, "my-key", []byte{3, 4}, []byte("ctx"))
			},
			method: "POST", path: "/v1/key/decrypt/my-key", reqBody: `{"ciphertext":"AwQ=","context":"Y3R4"}`,
			respBody: `{"plaintext":"aGk="}`,
			want:     []byte("hi"),
		},
		{
			name:   "HMAC",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.HMAC(ctx, "my-key", []byte("msg")) },
			method: "PUT", path: "/v1/key/hmac/my-key", reqBody: `{"message":"bXNn"}`,
			respBody: `{"hmac":"BQY="}`,
			want:     []byte{5, 6},
		},
		{
			name:   "DescribePolicy",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribePolicy(ctx, "my-policy") },
			method: "GET", path: "/v1/policy/describe/my-policy",
			respBody: `{"name":"my-policy","created_at":"2024-01-12T10:39:20.886816Z","created_by":"` + string(testIdentity) + `"}`,
			want:     &kes.DescribePolicyResponse{Name: "my-policy", CreatedAt: created, CreatedBy: testIdentity},
		},
		{
			name:   "GetPolicy",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.GetPolicy(ctx, "my-policy") },
			method: "GET", path: "/v1/policy/read/my-policy",
			respBody: `{"name":"my-policy","allow":{"/v1/key/create/a*":{}},"deny":{"/v1/key/delete/*":{}},"created_at":"2024-01-12T10:39:20.886816Z","created_by":"` + string(testIdentity) + `"}`,
			want: &kes.GetPolicyResponse{Name: "my-policy", Allow: kes.PatternSet{"/v1/key/create/a*": {}}, Deny: kes.PatternSet{"/v1/key/delete/*": {}},
				CreatedAt: created, CreatedBy: testIdentity},
		},
		{
			name:   "GetPolicy legacy arrays",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.GetPolicy(ctx, "p") },
			method: "GET", path: "/v1/policy/read/p",
			respBody: `{"allow":["/v1/key/create/a*"],"deny":[]}`,
			want:     &kes.GetPolicyResponse{Allow: kes.PatternSet{"/v1/key/create/a*": {}}, Deny: kes.PatternSet{}},
		},
		{
			name: "SetPolicy",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.SetPolicy(ctx, "my-policy", []string{"/v1/key/create/*"}, nil)
			},
			method: "POST", path: "/v1/policy/write/my-policy", reqBody: `{"allow":["/v1/key/create/*"],"deny":[]}`,
		},
		{
			name:   "DeletePolicy",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.DeletePolicy(ctx, "my-policy") },
			method: "DELETE", path: "/v1/policy/delete/my-policy",
		},
		{
			name: "AssignPolicy",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.AssignPolicy(ctx, "my-policy", testIdentity)
			},
			method: "POST", path: "/v1/policy/assign/my-policy", reqBody: `{"identity":"` + string(testIdentity) + `"}`,
		},
		{
			name:   "DescribeIdentity",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeIdentity(ctx, testIdentity) },
			method: "GET", path: "/v1/identity/describe/" + string(testIdentity),
			respBody: `{"policy":"p","created_at":"2024-01-12T10:39:20.886816Z","created_by":"` + string(testIdentity) + `"}`,
			want:     &kes.DescribeIdentityResponse{Policy: "p", CreatedAt: created, CreatedBy: testIdentity},
		},
		{
			name:   "DescribeSelf admin",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeSelf(ctx) },
			method: "GET", path: "/v1/identity/self/describe",
			respBody: `{"identity":"` + string(testIdentity) + `","admin":true,"created_at":"2024-01-12T10:39:20.886816Z"}`,
			want:     &kes.DescribeSelfResponse{Identity: testIdentity, IsAdmin: true, CreatedAt: created},
		},
		{
			name:   "DescribeSelf flat",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeSelf(ctx) },
			method: "GET", path: "/v1/identity/self/describe",
			respBody: `{"identity":"` + string(testIdentity) + `","created_at":"2024-01-12T10:39:20.886816Z","policy":"p","allow":{"/v1/key/*":{}}}`,
			want:     &kes.DescribeSelfResponse{Identity: testIdentity, CreatedAt: created, PolicyName: "p", Allow: kes.PatternSet{"/v1/key/*": {}}},
		},
		{
			name:   "DescribeSelf nested",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeSelf(ctx) },
			method: "GET", path: "/v1/identity/self/describe",
			respBody: `{"identity":"` + string(testIdentity) + `","created_at":"2024-01-12T10:39:20.886816Z","policy":{"name":"p","deny":{"/v1/key/*":{}}}}`,
			want:     &kes.DescribeSelfResponse{Identity: testIdentity, CreatedAt: created, PolicyName: "p", Deny: kes.PatternSet{"/v1/key/*": {}}},
		},
		{
			name:   "DescribeSelf kes-go era",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return c.DescribeSelf(ctx) },
			method: "GET", path: "/v1/identity/self/describe",
			respBody: `{"identity":"` + string(testIdentity) + `","policy_name":"p","created_at":"2024-01-12T10:39:20.886816Z","policy":{"allow":["/v1/key/*"],"deny":[]}}`,
			want:     &kes.DescribeSelfResponse{Identity: testIdentity, CreatedAt: created, PolicyName: "p", Allow: kes.PatternSet{"/v1/key/*": {}}, Deny: kes.PatternSet{}},
		},
		{
			name: "AssignIdentity",
			call: func(ctx context.Context, c *kes.Client) (any, error) {
				return nil, c.AssignIdentity(ctx, "p", testIdentity)
			},
			method: "POST", path: "/v1/identity/assign/p/" + string(testIdentity),
		},
		{
			name:   "ForgetIdentity",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.ForgetIdentity(ctx, testIdentity) },
			method: "DELETE", path: "/v1/identity/forget/" + string(testIdentity),
		},
		{
			name:   "DeleteIdentity",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return nil, c.DeleteIdentity(ctx, testIdentity) },
			method: "DELETE", path: "/v1/identity/delete/" + string(testIdentity),
		},
		{
			name:   "ListKeys",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return collect(c.ListKeys(ctx, "")) },
			method: "GET", path: "/v1/key/list/%2A",
			respBody: `{"names":["a","b"]}`,
			want:     []string{"a", "b"},
		},
		{
			name:   "ListPolicies",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return collect(c.ListPolicies(ctx, "my*")) },
			method: "GET", path: "/v1/policy/list/my",
			respBody: `{"names":["my-policy"],"continue_at":""}`,
			want:     []string{"my-policy"},
		},
		{
			name:   "ListIdentities",
			call:   func(ctx context.Context, c *kes.Client) (any, error) { return collect(c.ListIdentities(ctx, "a0")) },
			method: "GET", path: "/v1/identity/list/a0",
			respBody: `{"identities":["` + string(testIdentity) + `"],"continue_at":""}`,
			want:     []kes.Identity{testIdentity},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recorder{body: tt.respBody}
			if tt.respBody != "" {
				h.contentType = "application/json"
			}
			c, _ := newTestClient(t, newTLSServer(t, h))
			got, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			reqs := h.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.Path != tt.path {
				t.Errorf("request %s %s, want %s %s", r.Method, r.Path, tt.method, tt.path)
			}
			if r.Identity != testIdentity {
				t.Errorf("client identity %q, want %q", r.Identity, testIdentity)
			}
			if r.Proto != 2 {
				t.Errorf("request used HTTP/%d, want HTTP/2", r.Proto)
			}
			switch {
			case tt.reqBody == "" && r.Body != "":
				t.Errorf("request body %q, want none", r.Body)
			case tt.reqBody != "" && !jsonEqual(t, r.Body, tt.reqBody):
				t.Errorf("request body %s, want %s", r.Body, tt.reqBody)
			case tt.reqBody != "" && r.ContentType != "application/json":
				t.Errorf("request content type %q, want application/json", r.ContentType)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// collect gathers the elements of a listing or its error.
func collect[N any](seq func(func(N, error) bool)) ([]N, error) {
	var names []N
	for n, err := range seq {
		if err != nil {
			return names, err
		}
		names = append(names, n)
	}
	return names, nil
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:7373", "https://127.0.0.1:7373"},
		{"  127.0.0.1:7373 ", "https://127.0.0.1:7373"},
		{"http://kes.example:7373", "https://kes.example:7373"},
		{"https://kes.example:7373/", "https://kes.example:7373"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := kes.NormalizeEndpoint(tt.in); got != tt.want {
			t.Errorf("NormalizeEndpoint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewClientErrors(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string
		opts      []kes.Option
	}{
		{"no endpoint", nil, nil},
		{"only blanks", []string{" ", ""}, nil},
		{"bad scheme", []string{"ftp://kes"}, nil},
		{"API key and certificate", []string{"kes:7373"}, []kes.Option{kes.WithAPIKey(testKey), kes.WithCertificate(tlsCertificate(t))}},
		{"zero API key", []string{"kes:7373"}, []kes.Option{kes.WithAPIKey(kes.APIKey{})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kes.NewClient(tt.endpoints, tt.opts...); err == nil {
				t.Fatal("NewClient succeeded")
			}
		})
	}
	c, err := kes.NewClient([]string{"127.0.0.1:7373", " http://10.0.0.1:7373", ""}, kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Endpoints(), []string{"https://127.0.0.1:7373", "https://10.0.0.1:7373"}; !slices.Equal(got, want) {
		t.Fatalf("Endpoints() = %q, want %q", got, want)
	}
}
