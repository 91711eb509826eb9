package kes

import (
	"encoding/json"
	"time"
)

// This file holds the JSON bodies of the KES API (spec api.md §4) with their
// exact field names. Servers and clients share them: the server encodes the
// responses and decodes the requests, the [Client] does the opposite.
//
// Byte fields are standard base64 with padding (encoding/json's []byte form).

// Key algorithms of [DescribeKeyResponse.Algorithm] and [ImportKeyRequest.Cipher].
const (
	AES256   = "AES256"
	ChaCha20 = "ChaCha20"
)

// ErrorResponse is the body of every error response: {"message": "..."}.
type ErrorResponse struct {
	Message string `json:"message"`
}

// VersionResponse is the body of GET /version.
type VersionResponse struct {
	Version string `json:"version"` // build time, e.g. "2025-03-12T09-35-18Z"
	Commit  string `json:"commit"`  // VCS revision
}

// StatusResponse is the body of GET /v1/status.
type StatusResponse struct {
	Version    string `json:"version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	UpTime     int64  `json:"uptime"`       // seconds since start (nanoseconds before 2023-11)
	CPUs       int    `json:"num_cpu"`      // logical CPUs of the host
	UsableCPUs int    `json:"num_cpu_used"` // GOMAXPROCS
	HeapAlloc  uint64 `json:"mem_heap_used"`
	StackAlloc uint64 `json:"mem_stack_used"`

	// KeyStoreLatency is the latency of the key store status probe in
	// milliseconds; zero when unknown or unreachable.
	KeyStoreLatency int64 `json:"keystore_latency,omitempty"`
	// KeyStoreUnreachable is true when the key store cannot be reached.
	KeyStoreUnreachable bool `json:"keystore_unreachable,omitempty"`
	// KeyStoreUnavailable is true when the key store answers with an error
	// or cannot be reached. Servers set it together with
	// KeyStoreUnreachable, as old SDKs require.
	KeyStoreUnavailable bool `json:"keystore_unavailable,omitempty"`
}

// API describes one route of the server, an element of the GET /v1/api array.
type API struct {
	Method  string `json:"method"`
	Path    string `json:"path"`     // registered pattern, with a trailing slash for prefix routes
	MaxBody int64  `json:"max_body"` // bytes; 0 means the body is never read
	Timeout int64  `json:"timeout"`  // seconds; 0 means none

	// Extension marks a route that upstream KES does not have: an
	// OpenKES extension. Omitted (false) for upstream's routes, whose
	// entries stay byte-identical to upstream's.
	Extension bool `json:"openkes_extension,omitempty"`
}

// ImportKeyRequest is the body of PUT /v1/key/import/<name>.
type ImportKeyRequest struct {
	Key    []byte `json:"key"`    // exactly 32 bytes
	Cipher string `json:"cipher"` // [AES256] or [ChaCha20]
}

// DescribeKeyResponse is the body of GET /v1/key/describe/<name>.
type DescribeKeyResponse struct {
	Name      string    `json:"name"`
	Algorithm string    `json:"algorithm"` // [AES256] or [ChaCha20]
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
	// Version is the current version of a rotated key (an OpenKES
	// extension); empty for keys never rotated, as upstream.
	Version string `json:"version,omitempty"`
}

// ListKeysResponse is the body of GET /v1/key/list/<prefix>. ContinueAt is
// the first name not listed, or empty if the listing is complete.
type ListKeysResponse struct {
	Names      []string `json:"names"`
	ContinueAt string   `json:"continue_at,omitempty"`
}

// DeletedKey is a soft-deleted key: the body of
// GET /v1/key/deleted/describe/<name> and PUT /v1/key/restore/<name>, and
// an element of [ListDeletedKeysResponse] (OpenKES extension).
type DeletedKey struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
	// PurgeAt is when the server purges the key; zero (left out) if it
	// does not purge keys by itself (soft deletion off).
	PurgeAt time.Time `json:"purge_at,omitzero"`
}

// ListDeletedKeysResponse is the body of GET /v1/key/deleted/list/<prefix>:
// every soft-deleted key with the prefix, by name and then deletion time.
// A name deleted more than once is listed once per deletion.
type ListDeletedKeysResponse struct {
	Keys []DeletedKey `json:"keys"`
}

// GenerateKeyRequest is the optional body of PUT /v1/key/generate/<name>.
//
// Version names the key version to encrypt with ("2" or "v2"; OpenKES):
// empty, or a text that is no version number, means the current version.
type GenerateKeyRequest struct {
	Context []byte `json:"context,omitempty"` // associated data
	Version string `json:"version,omitempty"`
}

// GenerateKeyResponse is the body answered by PUT /v1/key/generate/<name>:
// a fresh data key and that key encrypted under the named key. Version is
// the key version that encrypted, filled only for rotated keys (OpenKES).
type GenerateKeyResponse struct {
	Plaintext  []byte `json:"plaintext"`
	Ciphertext []byte `json:"ciphertext"`
	Version    string `json:"version,omitempty"`
}

// EncryptKeyRequest is the body of PUT /v1/key/encrypt/<name>. Version is
// as in [GenerateKeyRequest].
type EncryptKeyRequest struct {
	Plaintext []byte `json:"plaintext"`
	Context   []byte `json:"context,omitempty"`
	Version   string `json:"version,omitempty"`
}

// EncryptKeyResponse is the body answered by PUT /v1/key/encrypt/<name>.
// Version is filled only for rotated keys (OpenKES).
type EncryptKeyResponse struct {
	Ciphertext []byte `json:"ciphertext"`
	Version    string `json:"version,omitempty"`
}

// DecryptKeyRequest is the body of PUT /v1/key/decrypt/<name>. A Version
// (OpenKES) makes the server try only that version; empty means the one
// the ciphertext names.
type DecryptKeyRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context,omitempty"`
	Version    string `json:"version,omitempty"`
}

// DecryptKeyResponse is the body answered by PUT /v1/key/decrypt/<name>.
//
// Version is the key version that decrypted, filled only for rotated keys
// (OpenKES).
type DecryptKeyResponse struct {
	Plaintext []byte `json:"plaintext"`
	Version   string `json:"version,omitempty"`
}

// HMACRequest is the body of PUT /v1/key/hmac/<name>.
type HMACRequest struct {
	Message []byte `json:"message"`
	Version string `json:"version,omitempty"`
}

// HMACResponse is the body answered by PUT /v1/key/hmac/<name>.
type HMACResponse struct {
	Sum []byte `json:"hmac"` // HMAC-SHA-256, 32 bytes
}

// RotateKeyResponse is the body answered by PUT /v1/key/rotate/<name>
// (OpenKES): the number of the new current version.
type RotateKeyResponse struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// KeyVersion describes one version of a key (OpenKES).
type KeyVersion struct {
	Version   int       `json:"version"`
	Algorithm string    `json:"algorithm"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
	Current   bool      `json:"current,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"` // disabled for encryption; still decrypts
}

// ListKeyVersionsResponse is the body of GET /v1/key/versions/<name>
// (OpenKES). A key never rotated has one version, 1.
type ListKeyVersionsResponse struct {
	Name     string       `json:"name"`
	Current  int          `json:"current"`
	Versions []KeyVersion `json:"versions"`
}

// KeyVersionRequest is the body of PUT /v1/key/disable/<name> and
// PUT /v1/key/enable/<name> (OpenKES).
type KeyVersionRequest struct {
	Version int `json:"version"`
}

// RewrapRequest is the body of PUT /v1/key/rewrap/<name> (OpenKES): a
// ciphertext of any version of the key and its context. Version, if not
// zero, is the version to encrypt with instead of the current one.
type RewrapRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context,omitempty"`
	Version    int    `json:"version,omitempty"`
}

// RewrapResponse is the body answered by PUT /v1/key/rewrap/<name>: the
// ciphertext of the same plaintext and context under Version.
type RewrapResponse struct {
	Ciphertext []byte `json:"ciphertext"`
	Version    int    `json:"version"`
}

// RewrapItem is one ciphertext of a [BulkRewrapRequest].
type RewrapItem struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context,omitempty"`
}

// BulkRewrapRequest is the body of PUT /v1/key/bulk/rewrap/<name>
// (OpenKES): at most 1000 ciphertexts, re-wrapped all or none.
type BulkRewrapRequest struct {
	Ciphertexts []RewrapItem `json:"ciphertexts"`
	Version     int          `json:"version,omitempty"`
}

// BulkRewrapResponse answers a [BulkRewrapRequest]: the new ciphertexts in
// the order of the request.
type BulkRewrapResponse struct {
	Ciphertexts [][]byte `json:"ciphertexts"`
	Version     int      `json:"version"`
}

// DescribePolicyResponse is the body of GET /v1/policy/describe/<name>.
type DescribePolicyResponse struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by"`
}

// GetPolicyResponse is the body of GET /v1/policy/read/<name>.
type GetPolicyResponse struct {
	Name      string     `json:"name"`
	Allow     PatternSet `json:"allow,omitempty"`
	Deny      PatternSet `json:"deny,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy Identity   `json:"created_by"`
}

// ListPoliciesResponse is the body of GET /v1/policy/list/<prefix>.
// Servers send Names as [] rather than null and ContinueAt even when empty.
type ListPoliciesResponse struct {
	Names      []string `json:"names"`
	ContinueAt string   `json:"continue_at"`
}

// WritePolicyRequest is the body of the ephemeral POST /v1/policy/write/<name>.
// Servers answer [] for an empty list, never null.
type WritePolicyRequest struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// AssignPolicyRequest is the body of the ephemeral POST /v1/policy/assign/<policy>.
type AssignPolicyRequest struct {
	Identity Identity `json:"identity"`
}

// DescribeIdentityResponse is the body of GET /v1/identity/describe/<identity>:
// IsAdmin for the admin identity, else the assigned policy.
type DescribeIdentityResponse struct {
	IsAdmin   bool      `json:"admin,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy Identity  `json:"created_by,omitempty"`
}

// DescribeSelfResponse is the body of GET /v1/identity/self/describe in the
// flat shape that current SDKs decode:
//
//	{"identity", "admin", "created_at", "created_by", "policy": "<name>", "allow": {...}, "deny": {...}}
//
// Decoding also accepts the nested shapes of other releases, where "policy"
// is an object holding allow and deny (spec api.md §4.7).
type DescribeSelfResponse struct {
	Identity   Identity   `json:"identity"`
	IsAdmin    bool       `json:"admin,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  Identity   `json:"created_by,omitempty"`
	PolicyName string     `json:"policy,omitempty"`
	Allow      PatternSet `json:"allow,omitempty"`
	Deny       PatternSet `json:"deny,omitempty"`
}

// UnmarshalJSON decodes the flat shape and the nested shapes of older and
// newer servers.
func (r *DescribeSelfResponse) UnmarshalJSON(b []byte) error {
	type flat DescribeSelfResponse
	var v struct {
		flat
		PolicyName string          `json:"policy_name"` // v0.19 – 2023-09
		Policy     json.RawMessage `json:"policy"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = DescribeSelfResponse(v.flat)
	r.PolicyName = v.PolicyName
	if len(v.Policy) == 0 || string(v.Policy) == "null" {
		return nil
	}
	if v.Policy[0] == '"' {
		return json.Unmarshal(v.Policy, &r.PolicyName)
	}
	var p struct {
		Name      string     `json:"name"`
		Allow     PatternSet `json:"allow"`
		Deny      PatternSet `json:"deny"`
		CreatedAt time.Time  `json:"created_at"`
		CreatedBy Identity   `json:"created_by"`
	}
	if err := json.Unmarshal(v.Policy, &p); err != nil {
		return err
	}
	if p.Name != "" {
		r.PolicyName = p.Name
	}
	r.Allow, r.Deny = p.Allow, p.Deny
	return nil
}

// ListIdentitiesResponse is the body of GET /v1/identity/list/<prefix>.
type ListIdentitiesResponse struct {
	Identities []Identity `json:"identities"`
	ContinueAt string     `json:"continue_at"`
}

// PatternSet is a set of policy path patterns. It encodes as a JSON object
// whose keys are the patterns and whose values are empty objects, as current
// servers do, and decodes from that form or from a JSON array of patterns,
// as servers before 2023-11 sent.
type PatternSet map[string]struct{}

// UnmarshalJSON decodes an object of patterns or an array of patterns.
func (s *PatternSet) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		set := make(PatternSet, len(list))
		for _, p := range list {
			set[p] = struct{}{}
		}
		*s = set
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	set := make(PatternSet, len(m))
	for p := range m {
		set[p] = struct{}{}
	}
	*s = set
	return nil
}

// ErrorEvent is one line of the GET /v1/log/error stream.
type ErrorEvent struct {
	Message string `json:"message"` // one log record, without trailing newline
}

// AuditEvent is one line of the GET /v1/log/audit stream.
type AuditEvent struct {
	Time     time.Time     `json:"time"`
	Request  AuditRequest  `json:"request"`
	Response AuditResponse `json:"response"`
}

// AuditRequest describes the request of an [AuditEvent].
type AuditRequest struct {
	IP       string   `json:"ip,omitempty"`
	Path     string   `json:"path"`
	Identity Identity `json:"identity,omitempty"`
}

// AuditResponse describes the response of an [AuditEvent].
type AuditResponse struct {
	StatusCode int `json:"code"`
	// Time is the request duration, decoded as a Go duration
	// (nanoseconds) as upstream SDKs do. Servers since 2023-11 send
	// milliseconds in this field, older ones nanoseconds.
	Time time.Duration `json:"time"`
}
