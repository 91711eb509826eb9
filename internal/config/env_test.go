package config_test

import (
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/apiroute"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/stores"
)

func TestEnvExpansion(t *testing.T) {
	t.Setenv("KES_TEST_ADMIN", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22")
	t.Setenv("KES_TEST_TIMEOUT", "20s")
	t.Setenv("KES_TEST_SKIP", "true")
	t.Setenv("KES_TEST_APP", "df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258")
	t.Setenv("KES_TEST_KEY", "my-key")
	t.Setenv("KES_TEST_PATH", "/var/lib/kes")
	t.Setenv("KES_TEST_EMPTY", "")
	t.Setenv("KES_TEST_LEVEL", "debug")
	t.Setenv("KES_TEST_ROUTE", "/v1/status")
	t.Setenv("KES_TEST_POLICY", "my-app")

	_, err := config.Parse([]byte(doc(
		"admin:",
		"  identity: \"  ${ KES_TEST_ADMIN }  \"",
		"tls:",
		"  key: prefix-${KES_TEST_KEY}",
		"  cert: ${KES_TEST_KEY}-suffix",
		"  password: ${KES_TEST_EMPTY}",
		"log:",
		"  error: ${KES_TEST_LEVEL}",
		"api:",
		"  ${KES_TEST_ROUTE}:",
		"    timeout: 1s",
		"  /v1/status:",
		"    skip_auth: ${KES_TEST_SKIP}",
		"    timeout: ${KES_TEST_TIMEOUT}",
		"policy:",
		"  ${KES_TEST_POLICY}:",
		"    allow:",
		"    - /v1/key/${KES_TEST_KEY}",
		"    identities:",
		"    - ${KES_TEST_APP}",
		"keys:",
		"  - name: ${KES_TEST_KEY}",
		"keystore:",
		"  fs:",
		"    path: ${KES_TEST_PATH}",
	)), "kes.yml", schema)
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Line != 16 {
		t.Fatalf("Parse: got %v; want the invalid policy name '${KES_TEST_POLICY}' on line 16 (names are not expanded)", err)
	}

	f, err := config.Parse([]byte(doc(
		"admin:",
		"  identity: \"  ${ KES_TEST_ADMIN }  \"",
		"tls:",
		"  key: prefix-${KES_TEST_KEY}",
		"  cert: ${KES_TEST_KEY}-suffix",
		"  password: ${KES_TEST_EMPTY}",
		"log:",
		"  error: ${KES_TEST_LEVEL}",
		"api:",
		"  ${KES_TEST_ROUTE}:",
		"    timeout: 1s",
		"  /v1/status:",
		"    skip_auth: ${KES_TEST_SKIP}",
		"    timeout: ${KES_TEST_TIMEOUT}",
		"policy:",
		"  my-app:",
		"    allow:",
		"    - /v1/key/${KES_TEST_KEY}",
		"    identities:",
		"    - ${KES_TEST_APP}",
		"keys:",
		"  - name: ${KES_TEST_KEY}",
		"keystore:",
		"  fs:",
		"    path: ${KES_TEST_PATH}",
	)), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	want := &config.File{
		Address: config.DefaultAddress,
		Admin:   "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
		TLS:     config.TLS{KeyFile: "prefix-${KES_TEST_KEY}", CertFile: "${KES_TEST_KEY}-suffix", Auth: config.AuthOff},
		Cache:   cache.Config{},
		Log:     config.Log{Error: slog.LevelDebug},
		API:     map[string]apiroute.Config{"/v1/status": {SkipAuth: true, Timeout: 20 * time.Second}},
		Policies: map[string]auth.PolicyConfig{"my-app": {
			Allow:      []string{"/v1/key/${KES_TEST_KEY}"},
			Identities: []kes.Identity{"df7281ca3fed4ef7d06297eb7cb9d590a4edc863b4425f4762bb2afaebfd3258"},
		}},
		Keys:     []string{"my-key"},
		KeyStore: &stores.FS{Path: "/var/lib/kes"},
		// No key_deletion: the default soft deletion (docs/key-deletion.md).
		KeyDeletion: config.KeyDeletion{Retention: config.DefaultRetention},
		Notices:     []config.Notice{{File: "kes.yml", Line: 10, Msg: "api route '${KES_TEST_ROUTE}' does not exist and is ignored"}},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got\n%#v\nwant\n%#v", f, want)
	}
}

func TestEnvErrors(t *testing.T) {
	t.Setenv("KES_TEST_BAD_DURATION", "15")
	t.Setenv("KES_TEST_BAD_BOOL", "yes")
	runErrorTests(t, []errorTest{
		{"unset", valid("log:", "  error: ${KES_TEST_UNSET}"), 10,
			"kesconf: referenced env. variable 'KES_TEST_UNSET' in line '10' not found", nil},
		{"unset-trimmed-name", valid("log:", "  error: \" ${ KES_TEST_UNSET } \""), 10,
			"kesconf: referenced env. variable 'KES_TEST_UNSET' in line '10' not found", nil},
		{"unset-list-item", valid("keys:", "  - name: a", "  - name: ${KES_TEST_UNSET}"), 11,
			"kesconf: referenced env. variable 'KES_TEST_UNSET' in line '11' not found", nil},
		{"duration-integer", valid("api:", "  /v1/status:", "    timeout: ${KES_TEST_BAD_DURATION}"), 11,
			"kesconf: invalid value for 'api./v1/status.timeout': expected a duration such as 15s or 5m, found '15'", nil},
		{"bool", valid("api:", "  /v1/status:", "    skip_auth: ${KES_TEST_BAD_BOOL}"), 11,
			"kesconf: invalid value for 'api./v1/status.skip_auth': expected true or false, found 'yes'", nil},
	})
	_, err := config.Parse([]byte(valid("address: ${KES_TEST_UNSET}")), "kes.yml", schema)
	var envErr *config.EnvError
	if !errors.As(err, &envErr) || envErr.Name != "KES_TEST_UNSET" || envErr.Line != 9 {
		t.Errorf("Parse: got %v, want an EnvError for KES_TEST_UNSET on line 9", err)
	}
}

// TestDefaults: the cache intervals the file leaves out or sets to zero
// stay zero, which the cache package turns into its defaults (5m any, 30s
// unused, no offline caching), as config.md §5 documents.
func TestDefaults(t *testing.T) {
	tests := []struct {
		name  string
		cache []string
		want  cache.Config
	}{
		{"absent", nil, cache.Config{}},
		{"empty", []string{"cache:"}, cache.Config{}},
		{"zero", []string{"cache:", "  expiry:", "    any: 0s", "    unused: 0s", "    offline: 0s"}, cache.Config{}},
		{"unused-only", []string{"cache:", "  expiry:", "    unused: 10s"}, cache.Config{Unused: 10 * time.Second}},
		{"any-only", []string{"cache:", "  expiry:", "    any: 1m"}, cache.Config{Any: time.Minute}},
		{"all", []string{"cache:", "  expiry:", "    any: 1h", "    unused: 1m", "    offline: 10m"},
			cache.Config{Any: time.Hour, Unused: time.Minute, Offline: 10 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse([]byte(valid(tt.cache...)), "kes.yml", schema)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Cache, tt.want) {
				t.Errorf("Cache: got %+v, want %+v", f.Cache, tt.want)
			}
			if f.Address != config.DefaultAddress || f.TLS.Auth != config.AuthOff || f.Log != (config.Log{}) {
				t.Errorf("defaults: got address %q, auth %q, log %+v", f.Address, f.TLS.Auth, f.Log)
			}
		})
	}
}

func TestLogLevels(t *testing.T) {
	tests := []struct {
		value string
		want  slog.Level
	}{
		{`""`, slog.LevelInfo},
		{"on", slog.LevelInfo},
		{"ON", slog.LevelInfo},
		{`"off"`, slog.LevelError + 1},
		{"Off", slog.LevelError + 1},
		{"DEBUG", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"Warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"ERROR+1", slog.LevelError + 1},
		{"debug-2", slog.LevelDebug - 2},
		{"12", 12},
		{"-4", slog.LevelDebug},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			f, err := config.Parse([]byte(valid("log:", "  error: "+tt.value, "  audit: "+tt.value)), "kes.yml", schema)
			if err != nil {
				t.Fatal(err)
			}
			if f.Log.Error != tt.want || f.Log.Audit != tt.want {
				t.Errorf("got %v/%v, want %v", f.Log.Error, f.Log.Audit, tt.want)
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	if _, err := config.ReadFile("testdata/does-not-exist.yml", schema); err == nil {
		t.Error("ReadFile of a missing file: got no error")
	}
	big := make([]byte, config.MaxFileSize+1)
	_, err := config.Parse(big, "big.yml", schema)
	if !errors.Is(err, config.ErrFileTooLarge) {
		t.Errorf("Parse of %d bytes: got %v, want ErrFileTooLarge", len(big), err)
	}
}

// TestAPIRoutesFromTable: the api section knows the routes of the server's
// route table (api.Paths), the legacy policy and identity routes included,
// which the list config kept before did not have: their settings were
// dropped as if the routes did not exist. Other paths still are.
func TestAPIRoutesFromTable(t *testing.T) {
	f, err := config.Parse([]byte(valid("api:", "  /v1/policy/write/:", "    timeout: 5s", "  /v1/nope:", "    timeout: 5s")), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]apiroute.Config{"/v1/policy/write/": {Timeout: 5 * time.Second}}
	if !reflect.DeepEqual(f.API, want) {
		t.Errorf("API: got %v, want %v", f.API, want)
	}
	if len(f.Notices) != 1 || f.Notices[0].Msg != "api route '/v1/nope' does not exist and is ignored" {
		t.Errorf("notices: %v", f.Notices)
	}
}
