package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes"
)

// startDriftNodes starts n servers with the same config: admin, and a
// policy "app" assigned to app. It returns their addresses.
func startDriftNodes(t *testing.T, n int, admin, app kes.APIKey) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		dir := t.TempDir()
		if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		config := writeServerConfig(t, dir, admin.Identity(), fmt.Sprintf(`policy:
  app:
    allow: [ /v1/key/generate/app-*, /v1/key/decrypt/app-* ]
    deny: [ /v1/key/generate/app-internal* ]
    identities: [ %s ]
keystore:
  fs:
    path: %s
`, app.Identity(), filepath.Join(dir, "keys")))
		s := &scriptServer{bin: kesBinary(t), config: config}
		t.Cleanup(s.stop)
		addr, err := s.start()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = addr
	}
	return addrs
}

func TestPolicyDrift(t *testing.T) {
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	addrs := startDriftNodes(t, 3, admin, app)
	vars := map[string]string{"KES_API_KEY": admin.Secret()}
	server := strings.Join(addrs, ",")

	// The same config everywhere: no drift.
	stdout, stderr, code := cliRun(t, vars, false, "policy", "drift", "-k", "-s", server)
	if code != 0 {
		t.Fatalf("drift on equal nodes: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if want := "No drift: 3 nodes agree on 1 policies and 2 identities.\n"; stdout != want {
		t.Fatalf("got %q, want %q", stdout, want)
	}

	// An ephemeral policy assigned to an identity on one node only, and
	// the config policy rewritten there.
	client, err := kes.NewClient([]string{addrs[1]}, kes.WithAPIKey(admin), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := client.SetPolicy(ctx, "tenant", []string{"/v1/key/create/tenant-*"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := client.AssignPolicy(ctx, "tenant", tenant.Identity()); err != nil {
		t.Fatal(err)
	}
	if err := client.SetPolicy(ctx, "app", []string{"/v1/key/generate/app-*"}, nil); err != nil {
		t.Fatal(err)
	}

	nodes := slices.Sorted(slices.Values(addrs))
	stdout, stderr, code = cliRun(t, vars, false, "policy", "drift", "-k", "-s", server)
	if code != exitDrift {
		t.Fatalf("drift: exit %d, want %d; stdout %q, stderr %q", code, exitDrift, stdout, stderr)
	}
	appRules := "allow [/v1/key/decrypt/app-* /v1/key/generate/app-*] deny [/v1/key/generate/app-internal*]"
	state := func(node, same, changed string) string {
		if node == addrs[1] {
			return changed
		}
		return same
	}
	w := len(nodes[0])
	for _, n := range nodes {
		w = max(w, len(n))
	}
	nameW := len(tenant.Identity().String())
	want := fmt.Sprintf("%-8s  %-*s  %-*s  %s\n", "Kind", nameW, "Name", w, "Node", "State")
	for _, row := range []struct{ kind, name, same, changed string }{
		{"policy", "app", appRules, "allow [/v1/key/generate/app-*] deny []"},
		{"policy", "tenant", "missing", "allow [/v1/key/create/tenant-*] deny []"},
		{"identity", tenant.Identity().String(), "missing", "policy tenant"},
	} {
		for _, n := range nodes {
			want += fmt.Sprintf("%-8s  %-*s  %-*s  %s\n", row.kind, nameW, row.name, w, n, state(n, row.same, row.changed))
		}
	}
	want += "\n3 of 5 policies and identities differ across 3 nodes.\n"
	if stdout != want {
		t.Fatalf("drift table:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, _, code = cliRun(t, vars, false, "policy", "drift", "-k", "--json", "-s", server)
	if code != exitDrift {
		t.Fatalf("drift --json: exit %d", code)
	}
	var got driftJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	rules := func(allow, deny []string) map[string]any {
		a, d := []any{}, []any{}
		for _, s := range allow {
			a = append(a, s)
		}
		for _, s := range deny {
			d = append(d, s)
		}
		return map[string]any{"allow": a, "deny": d}
	}
	perNode := func(same, changed any) map[string]any {
		m := map[string]any{}
		for _, n := range nodes {
			m[n] = same
			if n == addrs[1] {
				m[n] = changed
			}
		}
		return m
	}
	wantJSON := driftJSON{
		Nodes: nodes, Agree: false, Policies: 2, Identities: 3,
		Drift: []driftItem{
			{"policy", "app", perNode(
				rules([]string{"/v1/key/decrypt/app-*", "/v1/key/generate/app-*"}, []string{"/v1/key/generate/app-internal*"}),
				rules([]string{"/v1/key/generate/app-*"}, nil))},
			{"policy", "tenant", perNode(nil, rules([]string{"/v1/key/create/tenant-*"}, nil))},
			{"identity", tenant.Identity().String(), perNode(nil, "policy tenant")},
		},
	}
	if !reflect.DeepEqual(got, wantJSON) {
		t.Fatalf("drift --json:\n got %+v\nwant %+v", got, wantJSON)
	}

	// A node that cannot be reached is named, and the status says so.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	_, stderr, code = cliRun(t, vars, false, "policy", "drift", "-k", "--timeout", "5s", "-s", addrs[0]+","+dead)
	if code != exitNodeFailure {
		t.Fatalf("unreachable node: exit %d, want %d; stderr %q", code, exitNodeFailure, stderr)
	}
	if !strings.HasPrefix(stderr, "Error: node "+dead+": ") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("unreachable node: stderr %q does not name only %s", stderr, dead)
	}
	if strings.Contains(stderr, admin.Secret()) {
		t.Fatal("the error shows the API key")
	}
	stdout, _, code = cliRun(t, vars, false, "policy", "drift", "-k", "--json", "-s", addrs[0]+","+dead)
	var failed driftJSON
	if err := json.Unmarshal([]byte(stdout), &failed); err != nil || code != exitNodeFailure {
		t.Fatalf("unreachable node --json: exit %d, %v: %q", code, err, stdout)
	}
	if len(failed.Errors) != 1 || failed.Errors[0].Node != dead || failed.Agree {
		t.Fatalf("unreachable node --json: %+v", failed)
	}

	// A node that accepts connections and never answers is cut off by
	// --timeout, and named.
	hung := hungListener(t)
	_, stderr, code = cliRun(t, vars, false, "policy", "drift", "-k", "--timeout", "500ms", "-s", addrs[0]+","+hung)
	if code != exitNodeFailure || !strings.HasPrefix(stderr, "Error: node "+hung+": ") || !strings.Contains(stderr, "deadline exceeded") {
		t.Fatalf("hung node: exit %d, stderr %q", code, stderr)
	}

	// Fewer than two nodes is a usage mistake.
	if _, stderr, code = cliRun(t, vars, false, "policy", "drift", "-k", "-s", addrs[0]); code != 1 || !strings.Contains(stderr, "at least two nodes") {
		t.Fatalf("one node: exit %d, stderr %q", code, stderr)
	}
}

// hungListener returns the address of a listener that accepts connections
// and never reads from them. Cleanup closes it and its connections and
// waits for its goroutine.
func hungListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
