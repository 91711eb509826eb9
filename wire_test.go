package kes_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// TestWireEncoding pins the JSON that servers produce from the wire types.
func TestWireEncoding(t *testing.T) {
	at := time.Date(2024, 1, 12, 10, 39, 20, 886816000, time.UTC)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"self admin", kes.DescribeSelfResponse{Identity: testIdentity, IsAdmin: true, CreatedAt: at},
			`{"identity":"` + string(testIdentity) + `","admin":true,"created_at":"2024-01-12T10:39:20.886816Z"}`},
		{"self user", kes.DescribeSelfResponse{Identity: "x", CreatedAt: at, CreatedBy: "y", PolicyName: "p", Allow: kes.PatternSet{"/v1/key/*": {}}},
			`{"identity":"x","created_at":"2024-01-12T10:39:20.886816Z","created_by":"y","policy":"p","allow":{"/v1/key/*":{}}}`},
		{"policy", kes.GetPolicyResponse{Name: "p", Allow: kes.PatternSet{"b": {}, "a": {}}, CreatedAt: at, CreatedBy: "y"},
			`{"name":"p","allow":{"a":{},"b":{}},"created_at":"2024-01-12T10:39:20.886816Z","created_by":"y"}`},
		{"key list empty", kes.ListKeysResponse{}, `{"names":null}`},
		{"policy list", kes.ListPoliciesResponse{Names: []string{}}, `{"names":[],"continue_at":""}`},
		{"legacy describe key", kes.DescribeKeyResponse{Name: "k", Algorithm: kes.AES256}, `{"name":"k","algorithm":"AES256","created_at":"0001-01-01T00:00:00Z"}`},
		{"status", kes.StatusResponse{Version: "v", KeyStoreUnreachable: true, KeyStoreUnavailable: true},
			`{"version":"v","os":"","arch":"","uptime":0,"num_cpu":0,"num_cpu_used":0,"mem_heap_used":0,"mem_stack_used":0,"keystore_unreachable":true,"keystore_unavailable":true}`},
		{"audit", kes.AuditEvent{Time: at, Request: kes.AuditRequest{Path: "/v1/key/create/k"}, Response: kes.AuditResponse{StatusCode: 200, Time: 3}},
			`{"time":"2024-01-12T10:39:20.886816Z","request":{"path":"/v1/key/create/k"},"response":{"code":200,"time":3}}`},
		{"error", kes.ErrorResponse{Message: "key does not exist"}, `{"message":"key does not exist"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestPatternSetInvalid(t *testing.T) {
	var s kes.PatternSet
	for _, in := range []string{`"x"`, `42`, `[1]`} {
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("PatternSet accepted %s", in)
		}
	}
}
