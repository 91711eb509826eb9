package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// maxPolicySize bounds a policy file.
const maxPolicySize = 1 << 20

func newPolicyCmd(env *Env) *cobra.Command {
	cmd := groupCmd("policy", "Manage KES policies")
	var (
		conn connFlags
		out  outFlags
	)
	conn.register(cmd.PersistentFlags())
	sub := subCommands(env, &conn, &out)
	info := sub("info <name>", "Describe a policy", needArgs(1, 1, "no policy name specified"), policyInfo)
	show := sub("show <name>", "Show the allow and deny rules of a policy", needArgs(1, 1, "no policy name specified"), policyShow)
	ls := sub("ls [<pattern>]", "List policies (deprecated: use 'kes ls -p')", maxArgs(1), policyList, "list")
	for _, c := range []*cobra.Command{info, show, ls} {
		out.registerJSON(c.Flags())
	}
	out.registerColor(info.Flags())
	out.registerColor(ls.Flags())
	cmd.AddCommand(info, show, ls,
		sub("create <name> <file>", "Create an ephemeral policy from a JSON file", needArgs(2, 2, "no policy name specified", "no policy file specified"), policyCreate),
		sub("add <name> [<file>]", "Create an ephemeral policy from a JSON file or stdin", needArgs(1, 2, "no policy name specified"), policyCreate),
		sub("assign <policy> <identity>...", "Assign an ephemeral policy to identities", needArgs(2, -1, "no policy name specified", "no identity specified"), policyAssign),
		sub("rm <name>...", "Delete ephemeral policies", needArgs(1, -1, "no policy name specified"), policyRemove, "delete"),
		newPolicyDriftCmd(env, &conn, &out),
	)
	return cmd
}

// policyInfoJSON is the --json output of `kes policy info`.
type policyInfoJSON struct {
	Name      string       `json:"name"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy kes.Identity `json:"created_by"`
}

func policyInfo(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	info, err := client.DescribePolicy(ctx, args[0])
	if err != nil {
		return fmt.Errorf("failed to describe policy %q: %w", args[0], err)
	}
	if out.JSON {
		return p.json(policyInfoJSON{info.Name, info.CreatedAt, info.CreatedBy}, p.term)
	}
	p.label(11, "Name", p.style(ansiBold, info.Name))
	p.label(11, "Date", info.CreatedAt.Local().Format(dateFormat))
	p.label(11, "Created by", orUnknown(info.CreatedBy.String()))
	return nil
}

// policyShowJSON is the JSON output of `kes policy show`.
type policyShowJSON struct {
	Allow     kes.PatternSet `json:"allow,omitempty"`
	Deny      kes.PatternSet `json:"deny,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy kes.Identity   `json:"created_by"`
}

func policyShow(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	policy, err := client.GetPolicy(ctx, args[0])
	if err != nil {
		return fmt.Errorf("failed to show policy %q: %w", args[0], err)
	}
	if out.JSON || !p.term {
		return p.json(policyShowJSON{policy.Allow, policy.Deny, policy.CreatedAt, policy.CreatedBy}, p.term)
	}
	for _, r := range []struct {
		label string
		set   kes.PatternSet
	}{{"Allow:", policy.Allow}, {"Deny:", policy.Deny}} {
		if len(r.set) == 0 {
			continue
		}
		fmt.Fprintln(p.w, p.style(ansiBold, r.label))
		for _, pattern := range slices.Sorted(maps.Keys(r.set)) {
			fmt.Fprintf(p.w, "  · %s\n", pattern)
		}
	}
	fmt.Fprintf(p.w, "\nCreated at: %s\n", policy.CreatedAt.Local().Format(dateFormat))
	fmt.Fprintf(p.w, "Created by: %s\n", orUnknown(policy.CreatedBy.String()))
	return nil
}

func policyList(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	return listCommand(ctx, env, conn, out, args, "Policy", "policies", (*kes.Client).ListPolicies)
}

// policyFile is a JSON policy as old releases took it: "allow" and "deny"
// lists (v0.15+) or "paths" (up to v0.14). Lists may also be objects whose
// keys are the patterns, as `kes policy show` prints them.
type policyFile struct {
	Allow kes.PatternSet `json:"allow"`
	Deny  kes.PatternSet `json:"deny"`
	Paths kes.PatternSet `json:"paths"`
}

// policyCreate serves `policy create <name> <file>` and `policy add <name>
// [<file>]` (stdin without a file).
func policyCreate(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	r, file := env.Stdin, "<stdin>"
	if len(args) == 2 {
		f, err := os.Open(args[1])
		if err != nil {
			return fmt.Errorf("failed to read policy file: %w", err)
		}
		defer f.Close()
		r, file = f, args[1]
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPolicySize+1))
	if err != nil {
		return fmt.Errorf("failed to read policy file: %w", err)
	}
	if len(data) > maxPolicySize {
		return fmt.Errorf("policy file '%s' is larger than %d bytes", file, maxPolicySize)
	}
	var policy policyFile
	if err := json.Unmarshal(data, &policy); err != nil {
		return fmt.Errorf("invalid policy file '%s': %w", file, err)
	}
	allow := slices.Sorted(maps.Keys(policy.Allow))
	allow = append(allow, slices.Sorted(maps.Keys(policy.Paths))...)
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if err := client.SetPolicy(ctx, args[0], allow, slices.Sorted(maps.Keys(policy.Deny))); err != nil {
		return fmt.Errorf("failed to create policy %q: %w", args[0], err)
	}
	return nil
}

func policyAssign(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, id := range args[1:] {
		if err := client.AssignPolicy(ctx, args[0], kes.Identity(id)); err != nil {
			return fmt.Errorf("failed to assign policy %q to %q: %w", args[0], id, err)
		}
	}
	return nil
}

func policyRemove(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, name := range args {
		if err := client.DeletePolicy(ctx, name); err != nil {
			return fmt.Errorf("failed to remove policy %q: %w", name, err)
		}
	}
	return nil
}
