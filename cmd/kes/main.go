// Command kes is the OpenKES server and its command-line client.
//
// Each command group lives in its own file (server.go, key.go, ...). A
// command writes to the streams of its [Env]; only main calls os.Exit.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/version"
)

// Env is what a command sees of the outside world. Tests build their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// LookupEnv reports whether a variable is set (even if empty), as the
	// environment fallbacks of spec cli.md §2 need.
	LookupEnv func(string) (string, bool)

	// IsTerminal reports whether the command runs in "terminal mode":
	// stdout or stderr is a terminal (spec cli.md §1). Nil means no.
	IsTerminal func() bool
	// ReadPassword reads a password after a prompt was printed on Stderr,
	// without echo on a terminal. Nil means reading one line from Stdin.
	ReadPassword func() ([]byte, error)
	// Reload, if not nil, replaces SIGHUP as the trigger of a running
	// server's configuration reload (tests).
	Reload <-chan struct{}
	// KeyStores, if not nil, replaces stores.All as the table of key
	// stores a config file may name (tests). An upstream config file
	// cannot point a cloud store at an in-process fake (its token issuer,
	// its test CA); a test's table wraps the store's Decode and sets the
	// store Config's documented test fields, so nothing of the production
	// path is loosened.
	KeyStores []config.Backend
}

// exitError carries an exit code out of a command without printing.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := &Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, LookupEnv: os.LookupEnv,
		IsTerminal: func() bool {
			return term.IsTerminal(int(os.Stdout.Fd())) || term.IsTerminal(int(os.Stderr.Fd()))
		},
		ReadPassword: func() ([]byte, error) {
			if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
				pw, err := term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				return pw, err
			}
			return readLine(os.Stdin)
		},
	}
	code := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, env *Env, args []string) int {
	if line, ok := env.completionLine(); ok {
		if err := completeLine(env.Stdout, newRootCmd(env, new(bool)), line); err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
			return 1
		}
		return 0
	}
	var helped bool
	root := newRootCmd(env, &helped)
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		if helped {
			return 2
		}
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	if errors.Is(err, context.Canceled) {
		return 1
	}
	prefix := "Error:"
	if env.terminal() {
		prefix = ansiRed + prefix + ansiReset
	}
	fmt.Fprintf(env.Stderr, "%s %v\n", prefix, err)
	return 1
}

// newRootCmd returns the kes command tree. *helped is set when usage was
// printed for -h/--help or a command group without a sub-command, which
// exits with status 2 (spec cli.md §1).
func newRootCmd(env *Env, helped *bool) *cobra.Command {
	var showVersion, autoCompletion bool
	root := &cobra.Command{
		Use:           "kes",
		Short:         "OpenKES: a KES-compatible key server and its client",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%q is not a kes command. See 'kes --help'", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case showVersion:
				printVersion(env.Stdout)
				return nil
			case autoCompletion:
				return installAutoCompletion(env)
			}
			cmd.HelpFunc()(cmd, args)
			return nil
		},
	}
	root.Flags().BoolVarP(&showVersion, "version", "v", false, "print version information")
	root.Flags().BoolVar(&autoCompletion, "auto-completion", false, "install shell auto-completion")
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		*helped = true
		cmd.SetOut(env.Stderr)
		cmd.Usage()
		cmd.SetOut(env.Stdout)
	})
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%v. See '%s --help'", err, cmd.CommandPath())
	})
	root.AddCommand(
		newServerCmd(env),
		newLsCmd(env),
		newKeyCmd(env),
		newPolicyCmd(env),
		newIdentityCmd(env),
		newLogCmd(env),
		newStatusCmd(env),
		newMetricCmd(env),
		newMigrateCmd(env),
		newUpdateCmd(env),
		newToolCmd(env),
	)
	return root
}

// groupCmd returns a command that only holds sub-commands: without one it
// prints its usage, with an unknown one it fails.
// clientCommand is a sub-command that talks to a server.
type clientCommand func(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error

// subCommands returns the constructor of a group's sub-commands: each runs
// with the group's shared connection and output flags.
func subCommands(env *Env, conn *connFlags, out *outFlags) func(use, short string, args cobra.PositionalArgs, run clientCommand, aliases ...string) *cobra.Command {
	return func(use, short string, args cobra.PositionalArgs, run clientCommand, aliases ...string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: args, Aliases: aliases,
			RunE: func(c *cobra.Command, a []string) error { return run(c.Context(), env, conn, out, a) },
		}
	}
}

func groupCmd(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%q is not a %s command. See '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.HelpFunc()(cmd, args)
			return nil
		},
	}
}

// printVersion prints the output of `kes --version`.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "%-11s%s\n", "Version", version.Get())
	fmt.Fprintf(w, "%-11s%s %s/%s compiler=%s\n", "Runtime", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.Compiler)
	fmt.Fprintf(w, "%-11s%s\n", "License", "MIT https://opensource.org/license/mit")
	fmt.Fprintf(w, "%-11s%s\n", "Copyright", "2026 The OpenKES Authors")
}

// readLine reads one line of at most 4 KiB, without its line ending. It
// reads byte by byte so that the next call gets the next line.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 4096 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err == io.EOF && len(line) > 0 {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
