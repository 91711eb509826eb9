package kes_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the SDK small: applications import it, so every package
// it pulls in becomes theirs.
func TestDeps(t *testing.T) {
	forbidden := []struct{ prefix, reason string }{
		{"github.com/openkes/kes/internal/", "the SDK is public; server internals must not leak into it"},
		{"github.com/openkes/kes/cmd/", "the CLI builds on the SDK, not the other way round"},
		{"github.com/prometheus/", "the SDK parses the few metric lines it needs itself"},
		{"github.com/hashicorp/", "key store backends belong to the server"},
		{"github.com/aws/", "cloud SDKs belong to the server's key stores"},
		{"cloud.google.com/", "cloud SDKs belong to the server's key stores"},
		{"github.com/Azure/", "cloud SDKs belong to the server's key stores"},
		{"github.com/spf13/", "CLI frameworks belong to cmd/kes"},
		{"go.yaml.in/", "configuration files are the server's business"},
		{"google.golang.org/protobuf", "the SDK speaks JSON and the Prometheus text format only"},
		{"github.com/tinylib/msgp", "key records are the server's business"},
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/openkes/kes").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f.prefix) {
				t.Errorf("the SDK depends on %s: %s", dep, f.reason)
			}
		}
	}
}
