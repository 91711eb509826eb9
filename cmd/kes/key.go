package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	versions := sub("versions <name>", "List the versions of a key (OpenKES)", needArgs(1, 1, "no key name specified"), keyVersions)
	for _, c := range []*cobra.Command{info, ls, deleted, versions} {
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
		sub("rotate <name>...", "Add a new version to keys and make it current (OpenKES)", needArgs(1, -1, "no key name specified"), keyRotate),
		versions,
		sub("disable <name> <version>", "Stop a key version from encrypting; it still decrypts (OpenKES)",
			needArgs(2, 2, "no key name specified", "no version specified"), keyDisable),
		sub("enable <name> <version>", "Let a disabled key version encrypt again (OpenKES)",
			needArgs(2, 2, "no key name specified", "no version specified"), keyEnable),
		sub("rewrap <name> [<ciphertext> [<context>]]", "Re-encrypt ciphertexts under the current key version (OpenKES); without a ciphertext, JSON lines from stdin",
			needArgs(1, 3, "no key name specified"), keyRewrap),
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

// keyRotate rotates each named key and prints its new version: "<name> <version>"
// lines, or JSON lines {"name","version"} when piped.
func keyRotate(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, name := range args {
		n, err := client.RotateKey(ctx, name)
		if err != nil {
			return fmt.Errorf("failed to rotate key %q: %w", name, err)
		}
		if env.terminal() {
			fmt.Fprintf(env.Stdout, "%s: version %d\n", name, n)
			continue
		}
		b, _ := json.Marshal(kes.RotateKeyResponse{Name: name, Version: n})
		fmt.Fprintf(env.Stdout, "%s\n", b)
	}
	return nil
}

func keyVersions(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	v, err := client.ListKeyVersions(ctx, args[0])
	if err != nil {
		return fmt.Errorf("failed to list key versions: %w", err)
	}
	if out.JSON {
		return p.json(v, p.term)
	}
	fmt.Fprintf(env.Stdout, "%-8s %-9s %-19s %s\n", "Version", "Algorithm", "Date", "State")
	for _, kv := range v.Versions {
		state := "enabled"
		switch {
		case kv.Current:
			state = "current"
		case kv.Disabled:
			state = "disabled (decrypt only)"
		}
		fmt.Fprintf(env.Stdout, "%-8d %-9s %-19s %s\n", kv.Version, kv.Algorithm, kv.CreatedAt.Local().Format(dateFormat), state)
	}
	return nil
}

func keyDisable(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	return keySetVersion(ctx, env, conn, args, (*kes.Client).DisableKeyVersion, "disable")
}

func keyEnable(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	return keySetVersion(ctx, env, conn, args, (*kes.Client).EnableKeyVersion, "enable")
}

func keySetVersion(ctx context.Context, env *Env, conn *connFlags, args []string,
	set func(*kes.Client, context.Context, string, int) error, verb string) error {
	n, err := strconv.Atoi(args[1])
	if err != nil || n <= 0 {
		return fmt.Errorf("invalid version %q: a positive number", args[1])
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if err := set(client, ctx, args[0], n); err != nil {
		return fmt.Errorf("failed to %s version %d of key %q: %w", verb, n, args[0], err)
	}
	return nil
}

// rewrapLine is a line of `kes key rewrap <name>` input and output.
type rewrapLine struct {
	Ciphertext []byte `json:"ciphertext"`
	Context    []byte `json:"context,omitempty"`
	Version    int    `json:"version,omitempty"`
}

// keyRewrap re-wraps one ciphertext given as arguments, printed as
// printBytes does plus its version, or, without one, every JSON line
// {"ciphertext","context"} of stdin in batches of 1000 (the bulk API),
// printing a JSON line {"ciphertext","version"} per input line in order.
func keyRewrap(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return keyRewrapOne(ctx, env, client, args)
	}
	if env.Stdin == nil {
		return errors.New("no ciphertext specified")
	}
	var batch []kes.RewrapItem
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		resp, err := client.BulkRewrap(ctx, args[0], batch)
		if err != nil {
			return fmt.Errorf("failed to rewrap ciphertexts: %w", err)
		}
		for _, ct := range resp.Ciphertexts {
			b, _ := json.Marshal(rewrapLine{Ciphertext: ct, Version: resp.Version})
			fmt.Fprintf(env.Stdout, "%s\n", b)
		}
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(env.Stdin)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var in rewrapLine
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			return fmt.Errorf("invalid input line %d: %w", line, err)
		}
		batch = append(batch, kes.RewrapItem{Ciphertext: in.Ciphertext, Context: in.Context})
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("failed to read stdin: %w", err)
	}
	return flush()
}

func keyRewrapOne(ctx context.Context, env *Env, client *kes.Client, args []string) error {
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
	resp, err := client.Rewrap(ctx, args[0], ciphertext, context)
	if err != nil {
		return fmt.Errorf("failed to rewrap ciphertext: %w", err)
	}
	if env.terminal() {
		fmt.Fprintf(env.Stdout, "\nciphertext: %s\nversion:    %d\n", base64.StdEncoding.EncodeToString(resp.Ciphertext), resp.Version)
		return nil
	}
	b, _ := json.Marshal(rewrapLine{Ciphertext: resp.Ciphertext, Version: resp.Version})
	_, err = fmt.Fprintf(env.Stdout, "%s", b)
	return err
}
