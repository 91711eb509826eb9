package api

import (
	"net/http"
	"time"

	"github.com/openkes/kes/internal/apiroute"
)

// authMode says how a route authenticates its caller (spec
// identity-and-auth.md §4).
type authMode uint8

const (
	// authVerify: the identity must be the admin or have a policy that
	// allows the request path.
	authVerify authMode = iota
	// authIdentify: the identity is computed if a certificate is present;
	// the request always passes. Used by self-describe and skip_auth routes.
	authIdentify
	// authNone: no identity is computed (/version).
	authNone
	// authDelegated: the identity must be the admin or have a policy that
	// names the request path without wildcards (the ephemeral write
	// routes; spec api.md §5, the OpenKES rule). skip_auth never applies.
	authDelegated
)

// route is one entry of the route table. The table is plain data so that
// every limit of a route is visible in one place (routes below).
type route struct {
	Method  string        // PUT routes also accept POST
	Path    string        // the registered pattern; prefix routes end in '/'
	MaxBody int64         // 0: the body is never read
	Timeout time.Duration // deadline of the store calls and the response; 0: none
	Auth    authMode
	Counted bool // counted and timed in the HTTP metrics
	Audited bool // produces an audit event
	Ext     bool // an OpenKES extension, not an upstream route (marked in /v1/api)
	Handle  func(*Server, http.ResponseWriter, *request)
}

// prefix reports whether the route takes a resource after its path.
func (r *route) prefix() bool { return r.Path[len(r.Path)-1] == '/' }

const (
	maxBody        = 1_000_000 // decimal MB, as upstream since 2023-10
	maxLegacyBody  = 1 << 10   // bodies of the legacy assign routes
	defaultTimeout = 15 * time.Second
	shortTimeout   = 10 * time.Second
)

// routes returns the route table: every current route of spec api.md §3
// and the ephemeral policy/identity routes of §5 that the seed document
// describes (changes live in memory until the server restarts).
func routes() []route {
	const (
		get = http.MethodGet
		put = http.MethodPut
		del = http.MethodDelete
		pst = http.MethodPost
	)
	return []route{
		{Method: get, Path: "/version", Timeout: shortTimeout, Auth: authNone, Handle: (*Server).getVersion},
		{Method: get, Path: "/v1/ready", Timeout: defaultTimeout, Handle: (*Server).getReady},
		{Method: get, Path: "/v1/status", Timeout: defaultTimeout, Audited: true, Handle: (*Server).getStatus},
		{Method: get, Path: "/v1/metrics", Timeout: defaultTimeout, Handle: (*Server).getMetrics},
		{Method: get, Path: "/v1/api", Timeout: shortTimeout, Audited: true, Handle: (*Server).getAPIs},

		{Method: put, Path: "/v1/key/create/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).createKey},
		{Method: put, Path: "/v1/key/import/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).importKey},
		{Method: get, Path: "/v1/key/describe/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).describeKey},
		{Method: get, Path: "/v1/key/list/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).listKeys},
		{Method: del, Path: "/v1/key/delete/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).deleteKey},
		{Method: put, Path: "/v1/key/generate/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).generateKey},
		{Method: put, Path: "/v1/key/encrypt/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).encryptKey},
		{Method: put, Path: "/v1/key/decrypt/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).decryptKey},
		{Method: put, Path: "/v1/key/hmac/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).hmacKey},
		{Method: put, Path: "/v1/key/rotate/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).rotateKey},
		{Method: get, Path: "/v1/key/versions/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).listKeyVersions},
		{Method: put, Path: "/v1/key/disable/", MaxBody: maxLegacyBody, Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).disableKeyVersion},
		{Method: put, Path: "/v1/key/enable/", MaxBody: maxLegacyBody, Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).enableKeyVersion},
		{Method: put, Path: "/v1/key/rewrap/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).rewrapKey},
		{Method: put, Path: "/v1/key/bulk/rewrap/", MaxBody: maxBody, Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).bulkRewrapKey},

		// Soft deletion (docs/key-deletion.md). Purging has its own path,
		// so a policy that allows /v1/key/delete/ does not allow it.
		{Method: del, Path: "/v1/key/purge/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).purgeKey},
		{Method: put, Path: "/v1/key/restore/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).restoreKey},
		{Method: get, Path: "/v1/key/deleted/describe/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).describeDeletedKey},
		{Method: get, Path: "/v1/key/deleted/list/", Timeout: defaultTimeout, Counted: true, Audited: true, Ext: true, Handle: (*Server).listDeletedKeys},

		{Method: get, Path: "/v1/policy/describe/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).describePolicy},
		{Method: get, Path: "/v1/policy/read/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).readPolicy},
		{Method: get, Path: "/v1/policy/list/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).listPolicies},
		{Method: pst, Path: "/v1/policy/write/", MaxBody: maxBody, Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).writePolicy},
		{Method: del, Path: "/v1/policy/delete/", Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).deletePolicy},
		{Method: pst, Path: "/v1/policy/assign/", MaxBody: maxLegacyBody, Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).assignPolicy},

		{Method: get, Path: "/v1/identity/describe/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).describeIdentity},
		{Method: get, Path: "/v1/identity/self/describe", Timeout: defaultTimeout, Auth: authIdentify, Counted: true, Audited: true, Handle: (*Server).describeSelf},
		{Method: get, Path: "/v1/identity/list/", Timeout: defaultTimeout, Counted: true, Audited: true, Handle: (*Server).listIdentities},
		{Method: pst, Path: "/v1/identity/assign/", Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).assignIdentity},
		{Method: del, Path: "/v1/identity/forget/", Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).forgetIdentity},
		{Method: del, Path: "/v1/identity/delete/", Timeout: defaultTimeout, Auth: authDelegated, Counted: true, Audited: true, Handle: (*Server).forgetIdentity},

		{Method: get, Path: "/v1/log/error", Handle: (*Server).errorLog},
		{Method: get, Path: "/v1/log/audit", Handle: (*Server).auditLog},
	}
}

// RouteConfig overrides the defaults of one route (config file `api:`).
type RouteConfig = apiroute.Config

// public reports whether c turns rt from a policy-checked route into one
// that only identifies its caller: what skip_auth does, and only to such
// routes.
func public(c RouteConfig, rt *route) bool { return c.SkipAuth && rt.Auth == authVerify }

// Paths returns the path of every route, in table order: what the
// configuration file's api section may configure. The caller owns the
// slice.
func Paths() []string {
	rs := routes()
	paths := make([]string, len(rs))
	for i, rt := range rs {
		paths[i] = rt.Path
	}
	return paths
}
