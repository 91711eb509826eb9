package config_test

import (
	"reflect"
	"testing"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/ratelimit"
)

func TestRateLimits(t *testing.T) {
	t.Setenv("KES_TEST_RATE", "2.5")
	for _, tt := range []struct {
		name string
		yaml string
		want ratelimit.Config
	}{
		{"none", valid(), ratelimit.Config{}},
		{"all", doc(
			"admin:",
			"  identity: disabled",
			"  rate_limit: {requests_per_second: 1000, burst: 2000}",
			"tls: {key: k.pem, cert: c.pem}",
			"keystore: {fs: {path: /tmp/kes}}",
			"api:",
			"  rate_limit:",
			"    requests_per_second: 50",
			"    burst: 100",
			"  /v1/ready: {skip_auth: true}",
			"policy:",
			"  app:",
			"    allow: [/v1/key/generate/app-*]",
			"    identities: [a1]",
			"    rate_limit: {requests_per_second: 5, burst: 10}",
			"  minio:",
			"    identities: [a2]",
			"    rate_limit: off",
			"  slow:",
			"    rate_limit: {requests_per_second: 0.5}",
			"  env:",
			"    rate_limit: {requests_per_second: '${KES_TEST_RATE}'}",
			"  plain:",
			"    identities: [a3]",
		), ratelimit.Config{
			Admin:   &ratelimit.Limit{PerSecond: 1000, Burst: 2000},
			Default: &ratelimit.Limit{PerSecond: 50, Burst: 100},
			Policies: map[string]*ratelimit.Limit{
				"app":   {PerSecond: 5, Burst: 10},
				"minio": nil,
				"slow":  {PerSecond: 0.5, Burst: 1},
				"env":   {PerSecond: 2.5, Burst: 3},
			},
		}},
		{"null and off at the top", doc("admin:", "  identity: disabled", "  rate_limit:", "tls: {key: k.pem, cert: c.pem}",
			"keystore: {fs: {path: /tmp/kes}}", "api:", "  rate_limit: off"), ratelimit.Config{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse([]byte(tt.yaml), "kes.yml", schema)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.RateLimits, tt.want) {
				t.Errorf("got %+v, want %+v", f.RateLimits, tt.want)
			}
			if len(f.Notices) != 0 {
				t.Errorf("notices: %v", f.Notices)
			}
			if _, ok := f.API["rate_limit"]; ok {
				t.Error("api.rate_limit taken for a route")
			}
		})
	}
}

func TestRateLimitErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"zero", valid("api:", "  rate_limit:", "    requests_per_second: 0"), 11,
			"kesconf: invalid rate limit 'api.rate_limit': requests_per_second must be between 1.1574074074074073e-05 and 1e+09", nil},
		{"negative", valid("policy:", "  p:", "    rate_limit: {requests_per_second: -1, burst: 1}"), 11,
			"kesconf: invalid rate limit 'policy.p.rate_limit': requests_per_second must be between 1.1574074074074073e-05 and 1e+09", nil},
		{"not a number", doc("admin:", "  identity: disabled", "  rate_limit: {requests_per_second: fast}"), 3,
			"kesconf: invalid value for 'admin.rate_limit.requests_per_second': expected a number, found 'fast'", nil},
		{"NaN", valid("api:", "  rate_limit: {requests_per_second: NaN}"), 10,
			"kesconf: invalid rate limit 'api.rate_limit': requests_per_second must be between 1.1574074074074073e-05 and 1e+09", nil},
		{"burst zero", valid("api:", "  rate_limit:", "    requests_per_second: 5", "    burst: 0"), 12,
			"kesconf: invalid rate limit 'api.rate_limit': burst must be between 1 and 1000000000", nil},
		{"burst fraction", valid("api:", "  rate_limit: {requests_per_second: 5, burst: 1.5}"), 10,
			"kesconf: invalid value for 'api.rate_limit.burst': expected an integer, found '1.5'", nil},
		{"no rate", valid("policy:", "  p:", "    rate_limit:", "      burst: 5"), 11,
			"kesconf: invalid rate limit 'policy.p.rate_limit': requests_per_second is missing", nil},
		{"unknown field", valid("api:", "  rate_limit: {rps: 5}"), 10, "kesconf: unknown key 'api.rate_limit.rps'", nil},
		{"scalar", valid("api:", "  rate_limit: 5"), 10,
			"kesconf: invalid value for 'api.rate_limit': expected a mapping or off, found '5'", nil},
		{"env unset", valid("api:", "  rate_limit: {requests_per_second: '${KES_TEST_UNSET}'}"), 10,
			"kesconf: referenced env. variable 'KES_TEST_UNSET' in line '10' not found", nil},
	})
}
