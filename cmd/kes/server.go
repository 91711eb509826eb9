package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newServerCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server [--config FILE] [--addr ADDR] [--dev]",
		Short: "Start a KES server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("server: not wired yet")
		},
	}
	_ = env
	return cmd
}
