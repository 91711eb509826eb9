package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// maxListNames bounds how many names a listing collects before printing.
const maxListNames = 1 << 20

func newLsCmd(env *Env) *cobra.Command {
	var (
		conn             connFlags
		out              outFlags
		identity, policy bool
	)
	cmd := &cobra.Command{
		Use:   "ls [-a KEY] [-s HOST[:PORT]] [-k] [--json] [-i | -p] [PREFIX]",
		Short: "List keys, identities or policies",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if identity && policy {
				return errors.New("'-p / --policy' and '-i / --identity' must not be used at the same time")
			}
			var prefix string
			if len(args) == 1 {
				prefix = args[0]
			}
			return ls(cmd.Context(), env, &conn, &out, prefix, identity, policy)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&conn.Insecure, "insecure", "k", false, "skip verification of the server certificate")
	f.StringVarP(&conn.Server, "server", "s", "", "the KES server endpoint (default $MINIO_KES_SERVER or 127.0.0.1:7373)")
	f.StringVarP(&conn.APIKey, "api-key", "a", "", "the API key (default $MINIO_KES_API_KEY)")
	f.BoolVarP(&identity, "identity", "i", false, "list identities")
	f.BoolVarP(&policy, "policy", "p", false, "list policies")
	out.registerJSON(f)
	out.registerColor(f)
	return cmd
}

// ls lists keys, identities or policies starting with prefix.
func ls(ctx context.Context, env *Env, conn *connFlags, out *outFlags, prefix string, identity, policy bool) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	var names []string
	switch {
	case identity:
		names, err = collect(client.ListIdentities(ctx, prefix), nil)
		if err != nil {
			return fmt.Errorf("failed to list identities: %w", err)
		}
		return p.list("Identity", names, out.JSON)
	case policy:
		names, err = collect(client.ListPolicies(ctx, prefix), nil)
		if err != nil {
			return fmt.Errorf("failed to list policies: %w", err)
		}
		return p.list("Policy", names, out.JSON)
	}
	names, err = collect(client.ListKeys(ctx, prefix), nil)
	if err != nil {
		return fmt.Errorf("failed to list keys: %w", err)
	}
	return p.list("Key", names, out.JSON)
}

// collect returns the sorted names of seq for which match (nil: all)
// reports true.
func collect[N ~string](seq iter.Seq2[N, error], match func(string) bool) ([]string, error) {
	var names []string
	for n, err := range seq {
		if err != nil {
			return nil, err
		}
		if match != nil && !match(string(n)) {
			continue
		}
		if len(names) >= maxListNames {
			return nil, fmt.Errorf("more than %d names", maxListNames)
		}
		names = append(names, string(n))
	}
	slices.Sort(names)
	return names, nil
}

// listCommand runs the legacy list commands (key ls, policy ls, identity
// ls): the optional argument is a glob (default "*"), the names are printed
// under header, sorted.
func listCommand[N ~string](ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string,
	header, what string, list func(*kes.Client, context.Context, string) iter.Seq2[N, error],
) error {
	pattern := "*"
	if len(args) == 1 {
		pattern = args[0]
	}
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	prefix, match := globPrefix(pattern)
	names, err := collect(list(client, ctx, prefix), match)
	if err != nil {
		return fmt.Errorf("failed to list %s: %w", what, err)
	}
	return p.list(header, names, out.JSON)
}

// globPrefix splits a glob pattern of the legacy list commands into the
// literal prefix to ask the server for and a matcher for the rest; the
// matcher is nil when the prefix alone decides ("", "*", "my-key*").
func globPrefix(pattern string) (string, func(string) bool) {
	i := strings.IndexAny(pattern, `*?[\`)
	if i < 0 {
		return pattern, func(name string) bool { return name == pattern }
	}
	if i == len(pattern)-1 && pattern[i] == '*' {
		return pattern[:i], nil
	}
	return pattern[:i], func(name string) bool {
		ok, err := path.Match(pattern, name)
		return ok && err == nil
	}
}

// list prints names: as one JSON array (null when empty) or as a header
// followed by one name per line (nothing when empty).
func (p *printer) list(header string, names []string, asJSON bool) error {
	if asJSON {
		return p.json(names, false)
	}
	if len(names) == 0 {
		return nil
	}
	p.header(header)
	for _, n := range names {
		fmt.Fprintln(p.w, n)
	}
	return nil
}
