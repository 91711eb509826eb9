package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// dateFormat is how the CLI prints timestamps, in local time.
const dateFormat = "2006-01-02 15:04:05"

func newKeyCmd(env *Env) *cobra.Command {
	cmd := groupCmd("key", "Manage cryptographic keys")
	var (
		conn connFlags
		out  outFlags
	)
	conn.register(cmd.PersistentFlags())
	sub := subCommands(env, &conn, &out)
	info := sub("info <name>", "Describe a key", needArgs(1, 1, "no key name specified"), keyInfo)
	ls := sub("ls [<pattern>]", "List keys (deprecated: use 'kes ls')", maxArgs(1), keyList, "list")
	deleted := sub("deleted [<prefix>]", "List deleted keys that can be restored", maxArgs(1), keyDeleted)
	for _, c := range []*cobra.Command{info, ls, deleted} {
		out.registerJSON(c.Flags())
		out.registerColor(c.Flags())
	}
	var (
		purge     bool
		deletedAt string
	)
	rm := sub("rm <name>...", "Delete keys", needArgs(1, -1, "no key name specified"), keyRemoveCmd(&purge), "delete")
	rm.Flags().BoolVar(&purge, "purge", false, "delete at once with every deleted copy: no restore")
	restore := sub("restore <name>", "Restore a deleted key", needArgs(1, 1, "no key name specified"), keyRestoreCmd(&deletedAt))
	restore.Flags().StringVar(&deletedAt, "deleted-at", "", "restore the copy deleted at this RFC 3339 time (default: the newest)")
	cmd.AddCommand(
		sub("create <name>...", "Create keys; 'create <name> <base64 key>' imports a key", needArgs(1, -1, "no key name specified"), keyCreate),
		sub("import <name> <base64 key>", "Import a 256-bit AES key", needArgs(2, 2, "no key name specified", "no key specified"), keyImport),
		info,
		ls,
		rm,
		restore,
		deleted,
		sub("encrypt <name> <message>", "Encrypt a text message", needArgs(2, 2, "no key name specified", "no message specified"), keyEncrypt),
		sub("decrypt <name> <ciphertext> [<context>]", "Decrypt a base64 ciphertext", needArgs(2, 3, "no key name specified", "no ciphertext specified"), keyDecrypt),
		sub("dek <name> [<context>]", "Generate a data encryption key", needArgs(1, 2, "no key name specified"), keyDEK, "derive"),
	)
	return cmd
}

// keyCreate creates each named key. The form of releases up to v0.17,
// `create <name> <base64 key>`, imports the key: a base64 32-byte key can
// never be a valid key name (it ends with '=').
func keyCreate(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	if len(args) == 2 {
		if b, err := base64.StdEncoding.DecodeString(args[1]); err == nil && len(b) == 32 {
			clear(b)
			return keyImport(ctx, env, conn, nil, args)
		}
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, name := range args {
		if err := client.CreateKey(ctx, name); err != nil {
			return fmt.Errorf("failed to create key %q: %w", name, err)
		}
	}
	return nil
}

// keyImport imports a base64 256-bit key as an AES256 key.
func keyImport(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	key, err := base64.StdEncoding.DecodeString(args[1])
	if err != nil {
		return fmt.Errorf("invalid key: %w", err)
	}
	defer clear(key)
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if err := client.ImportKey(ctx, args[0], key, kes.AES256); err != nil {
		return fmt.Errorf("failed to import %q: %w", args[0], err)
	}
	return nil
}

// keyInfoJSON is the --json output of `kes key info`.
type keyInfoJSON struct {
	Name      string       `json:"name"`
	Algorithm string       `json:"algorithm,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy kes.Identity `json:"created_by,omitempty"`
}

func keyInfo(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	info, err := client.DescribeKey(ctx, args[0])
	if err != nil {
		return fmt.Errorf("failed to describe keys: %w", err)
	}
	if out.JSON {
		return p.json(keyInfoJSON{info.Name, info.Algorithm, info.CreatedAt, info.CreatedBy}, p.term)
	}
	p.label(11, "Name", p.style(ansiBold, info.Name))
	p.label(11, "Algorithm", info.Algorithm)
	p.label(11, "Date", info.CreatedAt.Local().Format(dateFormat))
	p.label(11, "Owner", orUnknown(info.CreatedBy.String()))
	return nil
}

func keyList(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	return listCommand(ctx, env, conn, out, args, "Key", "keys", (*kes.Client).ListKeys)
}

func keyRemove(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, name := range args {
		if err := client.DeleteKey(ctx, name); err != nil {
			return fmt.Errorf("failed to remove key %q: %w", name, err)
		}
	}
	return nil
}

func keyEncrypt(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	ciphertext, err := client.Encrypt(ctx, args[0], []byte(args[1]), nil)
	if err != nil {
		return fmt.Errorf("failed to encrypt message: %w", err)
	}
	return printBytes(env, []string{"ciphertext"}, [][]byte{ciphertext})
}

func keyDecrypt(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	ciphertext, err := base64.StdEncoding.DecodeString(args[1])
	if err != nil {
		return fmt.Errorf("invalid ciphertext: %w", err)
	}
	var context []byte
	if len(args) == 3 {
		if context, err = base64.StdEncoding.DecodeString(args[2]); err != nil {
			return fmt.Errorf("invalid context: %w", err)
		}
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	plaintext, err := client.Decrypt(ctx, args[0], ciphertext, context)
	if err != nil {
		return fmt.Errorf("failed to decrypt ciphertext: %w", err)
	}
	defer clear(plaintext)
	return printBytes(env, []string{"plaintext"}, [][]byte{plaintext})
}

func keyDEK(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	var (
		context []byte
		err     error
	)
	if len(args) == 2 {
		if context, err = base64.StdEncoding.DecodeString(args[1]); err != nil {
			return fmt.Errorf("invalid context: %w", err)
		}
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	dek, err := client.GenerateKey(ctx, args[0], context)
	if err != nil {
		return fmt.Errorf("failed to derive key: %w", err)
	}
	defer clear(dek.Plaintext)
	return printBytes(env, []string{"plaintext", "ciphertext"}, [][]byte{dek.Plaintext, dek.Ciphertext})
}

// printBytes prints named byte values as base64: in terminal mode as
// "\n<name>: <b64>" lines with the values aligned, else as one JSON object
// without a trailing newline.
func printBytes(env *Env, names []string, values [][]byte) error {
	if env.terminal() {
		width := 0
		for _, n := range names {
			width = max(width, len(n)+1)
		}
		fmt.Fprintln(env.Stdout)
		for i, n := range names {
			fmt.Fprintf(env.Stdout, "%-*s %s\n", width, n+":", base64.StdEncoding.EncodeToString(values[i]))
		}
		return nil
	}
	fmt.Fprint(env.Stdout, "{")
	for i, n := range names {
		if i > 0 {
			fmt.Fprint(env.Stdout, ",")
		}
		fmt.Fprintf(env.Stdout, "%q:%q", n, base64.StdEncoding.EncodeToString(values[i]))
	}
	_, err := fmt.Fprint(env.Stdout, "}")
	return err
}
