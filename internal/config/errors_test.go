package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/stores"
)

// schema names every store and every route of the server's tables, so
// that the examples decode as the server decodes them.
var schema = &config.Schema{KeyStores: stores.All, Routes: api.Paths()}

// doc joins lines into a YAML document; line i of the slice is line i+1.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// valid is a minimal valid document (8 lines) followed by extra lines,
// which start at line 9.
func valid(extra ...string) string {
	return doc(append([]string{
		"admin:",
		"  identity: disabled",
		"tls:",
		"  key: k.pem",
		"  cert: c.pem",
		"keystore:",
		"  fs:",
		"    path: /tmp/kes",
	}, extra...)...)
}

// ks is an admin and tls header followed by "keystore:" on line 6; the
// given lines start at line 7.
func ks(lines ...string) string {
	return doc(append([]string{
		"admin:",
		"  identity: disabled",
		"tls:",
		"  key: k.pem",
		"  cert: c.pem",
		"keystore:",
	}, lines...)...)
}

type errorTest struct {
	name string
	yaml string
	line int
	msg  string // exact text of the message after "<file>:<line>: "
	is   error  // if set, errors.Is must hold
}

func runErrorTests(t *testing.T, tests []errorTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), "kes.yml", schema)
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse: got %v, want a *config.Error", err)
			}
			if cerr.File != "kes.yml" || cerr.Line != tt.line || cerr.Err.Error() != tt.msg {
				t.Errorf("Parse: got %s:%d: %q, want kes.yml:%d: %q", cerr.File, cerr.Line, cerr.Err, tt.line, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Parse: %v does not match %v", err, tt.is)
			}
		})
	}
}

func TestGeneralErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"version", valid("version: v2"), 9, "edge: invalid server config version 'v2'", nil},
		{"version-number", valid("version: 1"), 9, "edge: invalid server config version '1'", nil},
		{"version-not-expanded", valid("version: ${V}"), 9, "edge: invalid server config version '${V}'", nil},
		{"address-hostname", valid("address: localhost:7373"), 9, "'localhost' is not a valid IP address", nil},
		{"address-no-port", valid("address: 127.0.0.1"), 9, "kesconf: invalid address '127.0.0.1': missing or invalid port", nil},
		{"address-bad-port", valid("address: :http"), 9, "kesconf: invalid address ':http': missing or invalid port", nil},
		{"admin-missing", doc("tls:", "  key: k", "  cert: c", "keystore:", "  fs:", "    path: p"), 1,
			"kesconf: invalid admin identity: no admin identity", config.ErrNoAdmin},
		{"admin-empty", doc("tls:", "  key: k", "  cert: c", "admin:", "  identity: \"\""), 5,
			"kesconf: invalid admin identity: no admin identity", config.ErrNoAdmin},
		{"admin-and-root", valid("root: disabled"), 9,
			"kesconf: legacy key 'root' and 'admin.identity' must not both be specified", nil},
		{"unknown-top-level", valid("foo: bar"), 9, "kesconf: unknown key 'foo'", nil},
		{"unknown-nested", valid("cache:", "  expiry:", "    never: 1s"), 11, "kesconf: unknown key 'cache.expiry.never'", nil},
		{"duplicate-key", valid("admin:", "  identity: x"), 9, "kesconf: key 'admin' is defined multiple times (first at line 1)", nil},
		{"duplicate-nested-key", doc("admin:", "  identity: a", "  identity: b"), 3,
			"kesconf: key 'admin.identity' is defined multiple times (first at line 2)", nil},
		{"mapping-expected", valid("cache: [1m]"), 9, "kesconf: invalid value for 'cache': expected a mapping, found a sequence", nil},
		{"scalar-expected", valid("address: [a]"), 9, "kesconf: invalid value for 'address': expected a scalar, found a sequence", nil},
		{"non-scalar-key", valid("? [a]", ": b"), 9, "kesconf: invalid value for '': expected a scalar key, found a sequence", nil},
		{"root-not-mapping", doc("- a"), 1, "kesconf: invalid value for '': expected a mapping, found a sequence", nil},
		{"yaml-syntax", valid("log:", "\terror: on"), 10, "kesconf: invalid YAML: found character that cannot start any token", nil},
		{"env-unset", valid("address: ${KES_TEST_UNSET}"), 9, "kesconf: referenced env. variable 'KES_TEST_UNSET' in line '9' not found", nil},
	})
}

func TestTLSErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"no-tls", doc("admin:", "  identity: x", "keystore:", "  fs:", "    path: p"), 1,
			"kesconf: invalid tls config: no private key", config.ErrNoPrivateKey},
		{"no-key", doc("admin:", "  identity: x", "tls:", "  cert: c"), 3,
			"kesconf: invalid tls config: no private key", config.ErrNoPrivateKey},
		{"no-cert", doc("admin:", "  identity: x", "tls:", "  key: k"), 3,
			"kesconf: invalid tls config: no certificate", config.ErrNoCertificate},
		{"auth", doc("admin:", "  identity: x", "tls:", "  key: k", "  cert: c", "  auth: maybe"), 6,
			"kesconf: invalid tls config: invalid auth 'maybe'", nil},
		{"proxy-is-admin", doc("admin:", "  identity: x", "tls:", "  key: k", "  cert: c", "  proxy:", "    identities:", "    - y", "    - x"), 9,
			"kesconf: invalid tls proxy: identity 'x' is already admin", nil},
		{"unknown", doc("admin:", "  identity: x", "tls:", "  key: k", "  cert: c", "  proxy:", "    header:", "      key: h"), 8,
			"kesconf: unknown key 'tls.proxy.header.key'", nil},
	})
}

func TestSectionErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"cache-any", valid("cache:", "  expiry:", "    any: -1m"), 11, "kesconf: invalid cache expiry '-1m0s'", nil},
		{"cache-unused", valid("cache:", "  expiry:", "    unused: -1s"), 11, "kesconf: invalid cache unused expiry '-1s'", nil},
		{"cache-offline", valid("cache:", "  expiry:", "    offline: -1h"), 11, "kesconf: invalid offline cache expiry '-1h0m0s'", nil},
		{"duration-integer", valid("cache:", "  expiry:", "    any: 300"), 11,
			"kesconf: invalid value for 'cache.expiry.any': expected a duration such as 15s or 5m, found '300'", nil},
		{"log-level", valid("log:", "  error: LOUD"), 10, "kesconf: invalid log level 'LOUD' for 'log.error'", nil},
		{"log-audit-level", valid("log:", "  audit: INFO+x"), 10, "kesconf: invalid log level 'INFO+x' for 'log.audit'", nil},
		{"api-timeout", valid("api:", "  /v1/status:", "    timeout: -1s"), 11, "kesconf: invalid timeout '-1000000000' for API '/v1/status'", nil},
		{"api-unknown-route-timeout", valid("api:", "  /v1/nope:", "    timeout: -1s"), 11, "kesconf: invalid timeout '-1000000000' for API '/v1/nope'", nil},
		{"api-skip-auth", valid("api:", "  /v1/status:", "    skip_auth: yes"), 11,
			"kesconf: invalid value for 'api./v1/status.skip_auth': expected true or false, found 'yes'", nil},
		{"api-unknown-field", valid("api:", "  /v1/status:", "    auth: off"), 11, "kesconf: unknown key 'api./v1/status.auth'", nil},
		{"api-duplicate-route", valid("api:", "  /v1/status: {}", "  /v1/status: {}"), 11,
			"kesconf: key '/v1/status' is defined multiple times (first at line 10)", nil},
	})
}

func TestPolicyErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"name", valid("policy:", "  my policy:", "    allow: [/v1/status]"), 10,
			"kes: policy name 'my policy' is empty, too long or contains invalid characters", nil},
		{"name-underscore", valid("policy:", "  _: {}"), 10,
			"kes: policy name '_' is empty, too long or contains invalid characters", nil},
		{"identity", valid("policy:", "  p:", "    identities:", "    - _"), 12,
			"kes: identity '_' is empty, too long or contains invalid characters", nil},
		{"identity-empty", valid("policy:", "  p:", "    identities:", "    - \"\""), 12,
			"kes: identity '' is empty, too long or contains invalid characters", nil},
		{"identity-admin", valid("policy:", "  p:", "    identities:", "    - disabled"), 12,
			"kesconf: invalid policy 'p': identity 'disabled' is already admin", nil},
		{"identity-proxy", doc("admin:", "  identity: a", "tls:", "  key: k", "  cert: c", "  proxy:", "    identities: [b]",
			"keystore:", "  fs:", "    path: p", "policy:", "  p:", "    identities: [b]"), 13,
			"kesconf: invalid policy 'p': identity 'b' is already a TLS proxy", nil},
		{"identity-twice", valid("policy:", "  p:", "    identities: [a1]", "  q:", "    identities:", "    - a2", "    - a1"), 15,
			"kes: cannot assign policy 'q' to 'a1': identity already has a policy", nil},
		{"allow-not-list", valid("policy:", "  p:", "    allow: /v1/status"), 11,
			"kesconf: invalid value for 'policy.p.allow': expected a sequence, found a scalar", nil},
		{"unknown-field", valid("policy:", "  p:", "    allowed: []"), 11, "kesconf: unknown key 'policy.p.allowed'", nil},
		{"key-duplicate", valid("keys:", "  - name: k1", "  - name: k2", "  - name: k1"), 12,
			"kesconf: invalid key config: key 'k1' is defined multiple times", nil},
		{"key-empty", valid("keys:", "  - name: \"\""), 10, "kesconf: invalid key config: key name is empty", nil},
		{"key-unknown-field", valid("keys:", "  - name: k", "    size: 256"), 11, "kesconf: unknown key 'keys[].size'", nil},
		{"keys-scalar", valid("keys: k1"), 9, "kesconf: invalid value for 'keys': expected a sequence, found a scalar", nil},
	})
}

func TestAliasAmplification(t *testing.T) {
	var b strings.Builder
	b.WriteString(valid("policy:", "  base:", "    allow: &a"))
	for range 1000 {
		b.WriteString("    - /v1/status\n")
	}
	for i := range 5000 {
		fmt.Fprintf(&b, "  p%d: {allow: *a}\n", i)
	}
	_, err := config.Parse([]byte(b.String()), "kes.yml", schema)
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Err.Error() != "kesconf: invalid YAML: too many values (aliases expand too much)" {
		t.Fatalf("Parse: got %v, want the too-many-values error", err)
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	for _, file := range []string{"full.yml", "legacy-v013.yml"} {
		t.Run(file, func(t *testing.T) {
			f, err := config.ReadFile("testdata/"+file, schema)
			if err != nil {
				t.Fatal(err)
			}
			f.TLS.Password = "tls-pass"
			out := fmt.Sprintf("%v %+v %s", f, f, f.KeyStore)
			for _, secret := range []string{"tls-pass", "1ba4b8aa", "NjE1ZmQ4MTYtMjEzOS00", "ehTdmWGS7fBq", "PRIVATE KEY", "wJalrXUtnFEMI", "s3cr3t", "p4ssw0rd"} {
				if strings.Contains(out, secret) {
					t.Errorf("printed config contains %q: %s", secret, out)
				}
			}
		})
	}
}

// TestPolicyIdentityTwiceInOnePolicy: the policy rules are auth's
// (auth.CheckPolicies), which accepts an identity listed twice in the same
// policy, as the server always did at runtime. Before the rules had one
// owner, the file refused it with "identity already has a policy" naming
// the policy itself.
func TestPolicyIdentityTwiceInOnePolicy(t *testing.T) {
	f, err := config.Parse([]byte(valid("policy:", "  p:", "    identities: [a1, a1]")), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Policies["p"].Identities; len(got) != 2 {
		t.Errorf("identities: %q", got)
	}
}
