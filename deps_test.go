package kes_test

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// rule forbids a package, and every package it imports, from depending on
// what matches pattern, for reason. A pattern is a package path; ending in
// "/..." it matches that package and those below it, ending in "/" every
// path with that prefix.
type rule struct{ pattern, reason string }

func (r rule) match(pkg string) bool {
	if base, ok := strings.CutSuffix(r.pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	if strings.HasSuffix(r.pattern, "/") {
		return strings.HasPrefix(pkg, r.pattern)
	}
	return pkg == r.pattern
}

const module = "github.com/openkes/kes"

// vendorClients are the SDKs of the remote key stores: only the stores
// themselves may pull them in.
var vendorClients = []rule{
	{"github.com/hashicorp/", "vendor clients belong to the key stores"},
	{"github.com/aws/", "cloud SDKs belong to the key stores"},
	{"cloud.google.com/", "cloud SDKs belong to the key stores"},
	{"github.com/Azure/", "cloud SDKs belong to the key stores"},
}

// TestDeps keeps the dependency graph pointing one way (README layout,
// style guide §2): the SDK stays small because applications import it, and
// the core of the server (store contract, fs store, crypto, auth, config)
// stays free of the transport and of every vendor SDK.
func TestDeps(t *testing.T) {
	sdk := append([]rule{
		{module + "/internal/", "the SDK is public; server internals must not leak into it"},
		{module + "/cmd/", "the CLI builds on the SDK, not the other way round"},
		{"github.com/prometheus/", "the SDK parses the few metric lines it needs itself"},
		{"github.com/spf13/", "CLI frameworks belong to cmd/kes"},
		{"go.yaml.in/", "configuration files are the server's business"},
		{"google.golang.org/protobuf/...", "the SDK speaks JSON and the Prometheus text format only"},
		{"github.com/tinylib/msgp/...", "key records are the server's business"},
	}, vendorClients...)
	core := []rule{
		{"net/http/...", "stores and crypto return their own errors; the API maps them to HTTP"},
		{module, "the SDK's error values are the API's; the core returns its own"},
	}
	stores := []rule{ // what config and auth must not reach
		{module + "/internal/keystore/fs", "the key store table (internal/keystore/stores) knows the stores, config does not"},
		{module + "/internal/keystore/vault/...", "the key store table knows the stores, config does not"},
		{module + "/internal/keystore/mem", "the key store table knows the stores, config does not"},
		{module + "/internal/keystore/stores", "the table imports config, not the other way round"},
	}
	tests := map[string][]rule{
		module:                           sdk,
		module + "/internal/keystore":    core,
		module + "/internal/keystore/fs": core,
		module + "/internal/crypto":      core,
		module + "/internal/config":      append(append([]rule{{module + "/internal/api/...", "the server reads the config, not the other way round"}}, vendorClients...), stores...),
		module + "/internal/apiroute":    {{module + "/...", "a leaf that config and api share"}},
		module + "/internal/ratelimit":   {{module + "/...", "a leaf that config and api share"}},
		module + "/internal/auth":        append([]rule{{module + "/internal/keystore/...", "authorization knows nothing of key storage"}}, stores...),
		module + "/internal/server": append(append([]rule{
			{module + "/cmd/...", "the CLI runs the server, not the other way round"},
			{module + "/internal/config", "the CLI reads the config file; the server takes a Config and a Connect func"},
			{"github.com/spf13/", "CLI frameworks belong to cmd/kes"},
		}, vendorClients...), stores...),
	}
	// Every key store: below the server, beside the others.
	for _, p := range goList(t, "list", module+"/internal/keystore/...") {
		switch p {
		case module + "/internal/keystore/stores": // the table: imports config by design
			continue
		}
		tests[p] = append(tests[p],
			rule{module + "/internal/api", "a key store never imports the server"},
			rule{module + "/internal/config", "a key store has its own Config; the table decodes into it"},
			rule{module + "/internal/metrics", "a key store never imports the server's metrics"},
		)
	}
	for _, pkg := range slices.Sorted(maps.Keys(tests)) {
		deps := goList(t, "list", "-deps", pkg)
		for _, dep := range deps {
			if dep == pkg {
				continue
			}
			for _, r := range tests[pkg] {
				if r.match(dep) {
					t.Errorf("%s depends on %s: %s", pkg, dep, r.reason)
				}
			}
		}
	}
}

// goList runs the go command with args and returns the listed packages.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) == 0 {
		t.Fatalf("go %s listed nothing", strings.Join(args, " "))
	}
	return pkgs
}
