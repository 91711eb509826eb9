package main

import (
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ANSI styles used in terminal mode.
const (
	ansiReset     = "\x1b[0m"
	ansiBold      = "\x1b[1m"
	ansiUnderline = "\x1b[4m"
	ansiRed       = "\x1b[31m"
	ansiGreen     = "\x1b[32m"
	ansiYellow    = "\x1b[33m"
	ansiCyan      = "\x1b[36m"
)

// outFlags are the output flags --json and --color.
type outFlags struct {
	JSON  bool
	Color string
}

func (o *outFlags) registerJSON(fs *pflag.FlagSet) {
	fs.BoolVar(&o.JSON, "json", false, "print JSON")
}

func (o *outFlags) registerColor(fs *pflag.FlagSet) {
	fs.StringVar(&o.Color, "color", "auto", "when to use colors: auto, never, always")
}

// printer writes the output of one command, styled or not.
type printer struct {
	w     io.Writer
	term  bool // terminal mode
	color bool
}

// newPrinter returns the printer for env and the flags o.
func newPrinter(env *Env, o *outFlags) (*printer, error) {
	p := &printer{w: env.Stdout, term: env.terminal()}
	switch o.Color {
	case "", "auto":
		p.color = p.term
	case "never":
	case "always":
		p.color = true
	default:
		return nil, fmt.Errorf("invalid color mode '%s'. Use 'auto', 'never' or 'always'", o.Color)
	}
	return p, nil
}

// style wraps s in the ANSI style if colors are on.
func (p *printer) style(ansi, s string) string {
	if !p.color || s == "" {
		return s
	}
	return ansi + s + ansiReset
}

// label prints "<label padded to width><value>" with a styled label.
func (p *printer) label(width int, label, value string) {
	fmt.Fprintf(p.w, "%s%*s%s\n", p.style(ansiCyan, label), max(1, width-utf8.RuneCountInString(label)), "", value)
}

// header prints a list header, underlined when styled.
func (p *printer) header(s string) {
	fmt.Fprintln(p.w, p.style(ansiBold+ansiUnderline, s))
}

// json writes v as one JSON line, or indented if indent is set.
func (p *printer) json(v any, indent bool) error {
	var (
		b   []byte
		err error
	)
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.w, "%s\n", b)
	return err
}

// usageError returns "<msg>. See '<cmd> --help'".
func usageError(cmd *cobra.Command, msg string) error {
	return fmt.Errorf("%s. See '%s --help'", msg, cmd.CommandPath())
}

// maxArgs returns a cobra argument check that allows at most n arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError(cmd, "too many arguments")
		}
		return nil
	}
}

// needArgs returns a cobra argument check that requires at least lo and
// at most hi (negative: any number) arguments; missing names what the
// first missing argument is, as in "no key name specified".
func needArgs(lo, hi int, missing ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo {
			return usageError(cmd, missing[min(len(args), len(missing)-1)])
		}
		if hi >= 0 && len(args) > hi {
			return usageError(cmd, "too many arguments")
		}
		return nil
	}
}
