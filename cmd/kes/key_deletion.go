package main

import (
	"context"
	"fmt"
	"time"
)

// The soft-deletion commands (docs/key-deletion.md), OpenKES extensions:
// `kes key rm --purge`, `kes key restore`, `kes key deleted`.

// keyRemoveCmd returns the run function of `kes key rm`: a delete, or with
// *purge a purge.
func keyRemoveCmd(purge *bool) clientCommand {
	return func(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
		if *purge {
			return keyPurge(ctx, env, conn, out, args)
		}
		return keyRemove(ctx, env, conn, out, args)
	}
}

// keyRestoreCmd returns the run function of `kes key restore`, which
// restores the copy deleted at *deletedAt (RFC 3339; empty: the newest).
func keyRestoreCmd(deletedAt *string) clientCommand {
	return func(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
		return keyRestore(ctx, env, conn, args[0], *deletedAt)
	}
}

func keyPurge(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, name := range args {
		if err := client.PurgeKey(ctx, name); err != nil {
			return fmt.Errorf("failed to purge key %q: %w", name, err)
		}
	}
	return nil
}

func keyRestore(ctx context.Context, env *Env, conn *connFlags, name, deletedAt string) error {
	var at time.Time
	if deletedAt != "" {
		t, err := time.Parse(time.RFC3339, deletedAt)
		if err != nil {
			return fmt.Errorf("invalid deletion time %q: want RFC 3339, e.g. 2026-12-01T20:00:00Z", deletedAt)
		}
		at = t
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if _, err := client.RestoreKey(ctx, name, at); err != nil {
		return fmt.Errorf("failed to restore key %q: %w", name, err)
	}
	return nil
}

func keyDeleted(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	prefix := ""
	if len(args) == 1 {
		prefix = args[0]
	}
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	keys, err := client.ListDeletedKeys(ctx, prefix)
	if err != nil {
		return fmt.Errorf("failed to list deleted keys: %w", err)
	}
	if out.JSON {
		return p.json(keys, false)
	}
	if len(keys) == 0 {
		return nil
	}
	p.header(fmt.Sprintf("%-32s %-25s %s", "Key", "Deleted", "Purged"))
	for _, k := range keys {
		purge := "never"
		if !k.PurgeAt.IsZero() {
			purge = k.PurgeAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(p.w, "%-32s %-25s %s\n", k.Name, k.DeletedAt.UTC().Format(time.RFC3339), purge)
	}
	return nil
}
