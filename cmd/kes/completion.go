package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// completionLine returns the command line to complete when kes runs as a
// bash `complete -C` completer: $SHELL is bash or zsh and $COMP_LINE is set
// (spec cli.md §1). The line is cut at $COMP_POINT when that is valid.
func (e *Env) completionLine() (string, bool) {
	shell := e.getenv("SHELL")
	if !strings.HasSuffix(shell, "bash") && !strings.HasSuffix(shell, "zsh") {
		return "", false
	}
	line, ok := e.lookup("COMP_LINE")
	if !ok {
		return "", false
	}
	if point, err := strconv.Atoi(e.getenv("COMP_POINT")); err == nil && point >= 0 && point <= len(line) {
		line = line[:point]
	}
	return line, true
}

func (e *Env) getenv(name string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(name)
}

// completeLine prints, one per line, the sub-commands or flags of root
// that complete the last word of line.
func completeLine(w io.Writer, root *cobra.Command, line string) error {
	words := strings.Fields(line)
	current := ""
	if len(words) > 0 && !strings.HasSuffix(line, " ") {
		current, words = words[len(words)-1], words[:len(words)-1]
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	cmd := root
	for _, word := range words[min(1, len(words)):] {
		if strings.HasPrefix(word, "-") {
			continue
		}
		next := findSub(cmd, word)
		if next == nil {
			break
		}
		cmd = next
	}
	cmd.InitDefaultHelpFlag()
	var matches []string
	if strings.HasPrefix(current, "-") {
		add := func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			matches = append(matches, "--"+f.Name)
			if f.Shorthand != "" {
				matches = append(matches, "-"+f.Shorthand)
			}
		}
		cmd.LocalFlags().VisitAll(add)
		cmd.InheritedFlags().VisitAll(add)
	} else {
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				matches = append(matches, c.Name())
				matches = append(matches, c.Aliases...)
			}
		}
	}
	slices.Sort(matches)
	for _, m := range slices.Compact(matches) {
		if strings.HasPrefix(m, current) {
			if _, err := fmt.Fprintln(w, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// installAutoCompletion serves `kes --auto-completion`: it registers the
// binary as its own bash completer in ~/.bashrc or ~/.zshrc.
func installAutoCompletion(env *Env) error {
	if runtime.GOOS == "windows" {
		return errors.New("auto-completion is not available for windows")
	}
	shell := filepath.Base(env.getenv("SHELL"))
	var rcFile, lines string
	home := env.getenv("HOME")
	if home == "" {
		return errors.New("auto-completion: $HOME is not set")
	}
	binary, err := os.Executable()
	if err != nil {
		return fmt.Errorf("auto-completion: %w", err)
	}
	if binary, err = filepath.Abs(binary); err != nil {
		return fmt.Errorf("auto-completion: %w", err)
	}
	complete := fmt.Sprintf("complete -o default -C %s %s\n", binary, filepath.Base(os.Args[0]))
	switch shell {
	case "bash":
		rcFile, lines = filepath.Join(home, ".bashrc"), complete
	case "zsh":
		rcFile, lines = filepath.Join(home, ".zshrc"), "autoload -U +X bashcompinit && bashcompinit\n"+complete
	default:
		return fmt.Errorf("auto-completion is not available for your shell '%s'", shell)
	}
	existing, err := os.ReadFile(rcFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("auto-completion: %w", err)
	}
	if bytes.Contains(existing, []byte(complete)) {
		fmt.Fprintf(env.Stderr, "Auto-completion is already installed in %s\n", rcFile)
		return nil
	}
	f, err := os.OpenFile(rcFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("auto-completion: %w", err)
	}
	if _, err = io.WriteString(f, "\n"+lines); err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("auto-completion: %w", err)
	}
	fmt.Fprintf(env.Stderr, "Auto-completion installed in %s. Open a new shell to use it.\n", rcFile)
	return nil
}
