package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// updateMessage is what `kes update` prints: OpenKES publishes no release
// binaries the CLI could download, so it never replaces itself.
const updateMessage = `kes update: OpenKES does not update itself over the network.
Upstream's 'kes update' downloaded MinIO's release binaries; OpenKES publishes none to download.
To update, rebuild from source:

    go install github.com/openkes/kes/cmd/kes@latest

or, in a checkout of the repository:

    git pull && go build -o kes ./cmd/kes
`

func newUpdateCmd(env *Env) *cobra.Command {
	var (
		conn      connFlags
		downgrade bool
		output    string
		goos      string
		arch      string
		minisign  string
	)
	cmd := &cobra.Command{
		Use:   "update [<version>|latest]",
		Short: "Explain how to update OpenKES (it does not update itself)",
		Args:  maxArgs(1),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(env.Stderr, updateMessage)
			return &exitError{code: 1}
		},
	}
	// Upstream's flags are accepted so that old scripts get the message
	// rather than a flag error.
	f := cmd.Flags()
	f.BoolVarP(&conn.Insecure, "insecure", "k", false, "ignored")
	f.BoolVarP(&downgrade, "downgrade", "d", false, "ignored")
	f.StringVarP(&output, "output", "o", "", "ignored")
	f.StringVar(&goos, "os", "", "ignored")
	f.StringVar(&arch, "arch", "", "ignored")
	f.StringVar(&minisign, "minisign-key", "", "ignored")
	return cmd
}
