package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// Exit codes of `kes policy drift` besides 0 (all nodes agree) and the
// codes every kes command uses (1 error, 2 usage).
const (
	exitDrift       = 3 // the nodes differ
	exitNodeFailure = 4 // a node could not be queried
)

// defaultDriftTimeout bounds the queries to one node.
const defaultDriftTimeout = 10 * time.Second

// newPolicyDriftCmd returns `kes policy drift`, an OpenKES extension.
func newPolicyDriftCmd(env *Env, conn *connFlags, out *outFlags) *cobra.Command {
	timeout := defaultDriftTimeout
	cmd := &cobra.Command{
		Use:   "drift -s HOST[:PORT],HOST[:PORT]...",
		Short: "Show where the policies and identities of nodes differ (OpenKES extension)",
		Long: `Show where the policies and identities of nodes differ (OpenKES extension).

Queries every node of --server (default $MINIO_KES_SERVER) on its own,
at the same time, and compares the policies (allow and deny rules) and the
identities (admin or assigned policy) they report, from the config file
and ephemeral ones alike. Creation times are not compared.

Exit status: 0 if all nodes agree, 3 if they differ, 4 if a node could
not be queried (each failing node is named), 1 on other errors.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return policyDrift(cmd.Context(), env, conn, out, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&conn.Server, "server", "s", "", "comma-separated node endpoints (default $MINIO_KES_SERVER)")
	f.StringVarP(&conn.APIKey, "api-key", "a", "", "the API key (default $MINIO_KES_API_KEY)")
	f.DurationVar(&timeout, "timeout", defaultDriftTimeout, "time limit for the queries to one node")
	out.registerJSON(f)
	out.registerColor(f)
	return cmd
}

// nodeState is what one node reports: policy name → rules, identity →
// role ("admin" or "policy <name>").
type nodeState struct {
	policies   map[string]policyRules
	identities map[string]string
}

// policyRules are the sorted allow and deny patterns of a policy.
type policyRules struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

func (r policyRules) String() string {
	return fmt.Sprintf("allow [%s] deny [%s]", strings.Join(r.Allow, " "), strings.Join(r.Deny, " "))
}

func (r policyRules) equal(o policyRules) bool {
	return slices.Equal(r.Allow, o.Allow) && slices.Equal(r.Deny, o.Deny)
}

// driftItem is one policy or identity that the nodes disagree on. Nodes
// maps each node to what it reports; nil means missing on that node.
type driftItem struct {
	Kind  string         `json:"kind"` // "policy" or "identity"
	Name  string         `json:"name"`
	Nodes map[string]any `json:"nodes"`
}

// driftJSON is the --json output of `kes policy drift`.
type driftJSON struct {
	Nodes      []string      `json:"nodes"`
	Agree      bool          `json:"agree"`
	Policies   int           `json:"policies"`   // distinct policy names over all nodes
	Identities int           `json:"identities"` // distinct identities over all nodes
	Drift      []driftItem   `json:"drift"`
	Errors     []driftFailed `json:"errors,omitempty"`
}

type driftFailed struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}

func policyDrift(ctx context.Context, env *Env, conn *connFlags, out *outFlags, timeout time.Duration) error {
	p, err := newPrinter(env, out)
	if err != nil {
		return err
	}
	if timeout <= 0 {
		return errors.New("invalid --timeout: must be positive")
	}
	nodes := slices.Compact(slices.Sorted(slices.Values(conn.endpoints(env))))
	if len(nodes) < 2 {
		return errors.New("policy drift needs at least two nodes. Use '--server' with a comma-separated list")
	}
	opts, err := conn.options(env)
	if err != nil {
		return err
	}

	states := make([]*nodeState, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Go(func() {
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			states[i], errs[i] = fetchNodeState(nctx, node, opts)
		})
	}
	wg.Wait()

	var failed []driftFailed
	for i, err := range errs {
		if err != nil {
			failed = append(failed, driftFailed{nodes[i], err.Error()})
		}
	}
	if len(failed) > 0 {
		if out.JSON {
			if err := p.json(driftJSON{Nodes: nodes, Drift: []driftItem{}, Errors: failed}, p.term); err != nil {
				return err
			}
		}
		prefix := "Error:"
		if env.terminal() {
			prefix = ansiRed + prefix + ansiReset
		}
		for _, f := range failed {
			fmt.Fprintf(env.Stderr, "%s node %s: %s\n", prefix, f.Node, f.Error)
		}
		return &exitError{exitNodeFailure}
	}

	report := compareNodes(nodes, states)
	if out.JSON {
		if err := p.json(report, p.term); err != nil {
			return err
		}
	} else {
		printDrift(p, report)
	}
	if !report.Agree {
		return &exitError{exitDrift}
	}
	return nil
}

// fetchNodeState reads every policy and identity of one node.
func fetchNodeState(ctx context.Context, node string, opts []kes.Option) (*nodeState, error) {
	client, err := kes.NewClient([]string{node}, opts...)
	if err != nil {
		return nil, err
	}
	s := &nodeState{policies: map[string]policyRules{}, identities: map[string]string{}}
	policies, err := collect(client.ListPolicies(ctx, ""), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list policies: %w", err)
	}
	for _, name := range policies {
		pol, err := client.GetPolicy(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("failed to read policy %q: %w", name, err)
		}
		s.policies[name] = policyRules{ // [] rather than null in JSON
			Allow: append([]string{}, slices.Sorted(maps.Keys(pol.Allow))...),
			Deny:  append([]string{}, slices.Sorted(maps.Keys(pol.Deny))...),
		}
	}
	ids, err := collect(client.ListIdentities(ctx, ""), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to list identities: %w", err)
	}
	for _, id := range ids {
		info, err := client.DescribeIdentity(ctx, kes.Identity(id))
		if err != nil {
			return nil, fmt.Errorf("failed to describe identity %q: %w", id, err)
		}
		if info.IsAdmin {
			s.identities[id] = "admin"
		} else {
			s.identities[id] = "policy " + info.Policy
		}
	}
	return s, nil
}

// compareNodes returns the policies and identities on which the nodes
// disagree, sorted by kind and name.
func compareNodes(nodes []string, states []*nodeState) driftJSON {
	report := driftJSON{Nodes: nodes, Drift: []driftItem{}}
	policyNames := map[string]bool{}
	idNames := map[string]bool{}
	for _, s := range states {
		for name := range s.policies {
			policyNames[name] = true
		}
		for id := range s.identities {
			idNames[id] = true
		}
	}
	report.Policies, report.Identities = len(policyNames), len(idNames)
	for _, name := range slices.Sorted(maps.Keys(policyNames)) {
		item := driftItem{Kind: "policy", Name: name, Nodes: map[string]any{}}
		differ := false
		first, firstOK := states[0].policies[name]
		for i, s := range states {
			rules, ok := s.policies[name]
			if ok {
				item.Nodes[nodes[i]] = rules
			} else {
				item.Nodes[nodes[i]] = nil
			}
			if ok != firstOK || (ok && !rules.equal(first)) {
				differ = true
			}
		}
		if differ {
			report.Drift = append(report.Drift, item)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(idNames)) {
		item := driftItem{Kind: "identity", Name: id, Nodes: map[string]any{}}
		differ := false
		first, firstOK := states[0].identities[id]
		for i, s := range states {
			role, ok := s.identities[id]
			if ok {
				item.Nodes[nodes[i]] = role
			} else {
				item.Nodes[nodes[i]] = nil
			}
			if ok != firstOK || role != first {
				differ = true
			}
		}
		if differ {
			report.Drift = append(report.Drift, item)
		}
	}
	report.Agree = len(report.Drift) == 0
	return report
}

// printDrift prints the differences as a table: one row per node of each
// policy or identity the nodes disagree on.
func printDrift(p *printer, r driftJSON) {
	if r.Agree {
		fmt.Fprintf(p.w, "No drift: %d nodes agree on %d policies and %d identities.\n", len(r.Nodes), r.Policies, r.Identities)
		return
	}
	nameWidth, nodeWidth := len("Name"), len("Node")
	for _, item := range r.Drift {
		nameWidth = max(nameWidth, len(item.Name))
	}
	for _, n := range r.Nodes {
		nodeWidth = max(nodeWidth, len(n))
	}
	p.header(fmt.Sprintf("%-8s  %-*s  %-*s  %s", "Kind", nameWidth, "Name", nodeWidth, "Node", "State"))
	for _, item := range r.Drift {
		for _, node := range r.Nodes {
			state := p.style(ansiRed, "missing")
			if v := item.Nodes[node]; v != nil {
				state = fmt.Sprint(v)
			}
			fmt.Fprintf(p.w, "%-8s  %-*s  %-*s  %s\n", item.Kind, nameWidth, item.Name, nodeWidth, node, state)
		}
	}
	fmt.Fprintf(p.w, "\n%d of %d policies and identities differ across %d nodes.\n", len(r.Drift), r.Policies+r.Identities, len(r.Nodes))
}
