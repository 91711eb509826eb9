package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// maxPEMSize bounds the certificate and key files the identity commands read.
const maxPEMSize = 1 << 20

func newIdentityCmd(env *Env) *cobra.Command {
	var (
		conn connFlags
		out  outFlags
	)
	cmd := &cobra.Command{
		Use:   "identity [<api-key> | <file>]",
		Short: "Generate API keys and manage identities",
		Long: `Generate API keys and manage identities.

Without an argument, prints a new random API key. With an API key, prints
its identity. With a PEM file, prints the identity of its certificate or
the API key of its Ed25519 private key.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return identityGenerate(env)
			}
			return identityOfArg(env, args[0])
		},
	}
	conn.register(cmd.PersistentFlags())
	sub := subCommands(env, &conn, &out)
	info := sub("info [<identity>]", "Describe an identity, or the own one", maxArgs(1), identityInfo)
	ls := sub("ls [<pattern>]", "List identities (deprecated: use 'kes ls -i')", maxArgs(1), identityList, "list")
	for _, c := range []*cobra.Command{info, ls} {
		out.registerJSON(c.Flags())
		out.registerColor(c.Flags())
	}
	cmd.AddCommand(
		newIdentityNewCmd(env, false),
		&cobra.Command{
			Use:   "of <api-key | certificate>...",
			Short: "Print the identity of API keys or certificates",
			Args:  needArgs(1, -1, "no API key or certificate specified"),
			RunE:  func(_ *cobra.Command, args []string) error { return identityOf(env, args) },
		},
		info, ls,
		sub("assign <identity> <policy>", "Assign an ephemeral policy to an identity", needArgs(2, 2, "no identity specified", "no policy name specified"), identityAssign),
		sub("rm <identity>...", "Remove the ephemeral policy assignment of identities", needArgs(1, -1, "no identity specified"), identityRemove),
		sub("forget <identity>", "Remove the ephemeral policy assignment of an identity", needArgs(1, 1, "no identity specified"), identityForget),
	)
	return cmd
}

// identityGenerate prints a new random API key.
func identityGenerate(env *Env) error {
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return fmt.Errorf("failed to generate API key: %w", err)
	}
	if !env.terminal() {
		_, err = fmt.Fprint(env.Stdout, key.Secret())
		return err
	}
	fmt.Fprintf(env.Stdout, "Your API key:\n\n   %s\n\n", key.Secret())
	fmt.Fprintf(env.Stdout, "This is the only time it is shown. Keep it secret and store it in a safe place.\n\n")
	fmt.Fprintf(env.Stdout, "Your API key's identity:\n\n   %s\n\n", key.Identity())
	fmt.Fprintf(env.Stdout, "The identity is not a secret: servers name clients by it.\nIt can be computed again with:\n\n   $ kes identity %s\n", key.Secret())
	return nil
}

// identityOfArg serves `kes identity <api-key>` and `kes identity <file>`.
func identityOfArg(env *Env, arg string) error {
	if strings.HasPrefix(arg, "kes:v1:") {
		key, err := kes.ParseAPIKey(arg)
		if err != nil {
			return err
		}
		if env.terminal() {
			_, err = fmt.Fprintf(env.Stdout, "Identity:\n\n   %s\n", key.Identity())
			return err
		}
		_, err = fmt.Fprint(env.Stdout, key.Identity())
		return err
	}
	data, err := readPEM(arg)
	if err != nil {
		return err
	}
	defer clear(data)
	if cert, ok := firstCertificate(data); ok {
		return printValue(env, kes.IdentityOf(cert).String())
	}
	key, ok, err := firstPrivateKey(env, data, arg)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("'%s' contains no valid PEM certificate or private key", arg)
	}
	edKey, isEd := key.(ed25519.PrivateKey)
	if !isEd {
		return fmt.Errorf("'%s' contains unsupported private key. Only ed25519 private keys are supported", arg)
	}
	apiKey, err := kes.APIKeyFromPrivateKey(edKey)
	if err != nil {
		return err
	}
	return printValue(env, apiKey.Secret())
}

// printValue prints s: bare in non-terminal mode, with a newline otherwise.
func printValue(env *Env, s string) error {
	if env.terminal() {
		s += "\n"
	}
	_, err := fmt.Fprint(env.Stdout, s)
	return err
}

// identityOf serves `kes identity of <api-key|cert-file>...`: one identity
// per line; in non-terminal mode without the final newline.
func identityOf(env *Env, args []string) error {
	ids := make([]string, 0, len(args))
	for _, arg := range args {
		id, err := identityOfOne(env, arg)
		if err != nil {
			return err
		}
		ids = append(ids, id.String())
	}
	return printValue(env, strings.Join(ids, "\n"))
}

func identityOfOne(env *Env, arg string) (kes.Identity, error) {
	if strings.HasPrefix(arg, "kes:v1:") {
		key, err := kes.ParseAPIKey(arg)
		if err != nil {
			return "", err
		}
		return key.Identity(), nil
	}
	data, err := readPEM(arg)
	if err != nil {
		return "", err
	}
	defer clear(data)
	if cert, ok := firstCertificate(data); ok {
		return kes.IdentityOf(cert), nil
	}
	return "", fmt.Errorf("'%s' contains no valid PEM certificate", arg)
}

// readPEM reads a file of at most maxPEMSize bytes.
func readPEM(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPEMSize {
		return nil, fmt.Errorf("'%s' is larger than %d bytes", name, maxPEMSize)
	}
	return data, nil
}

// firstCertificate returns the first parsable CERTIFICATE block of data.
func firstCertificate(data []byte) (*x509.Certificate, bool) {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return nil, false
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			return cert, true
		}
	}
}

// firstPrivateKey parses the first "PRIVATE KEY" or "* PRIVATE KEY" block
// of data as PKCS#8, decrypting a legacy encrypted block with a password.
func firstPrivateKey(env *Env, data []byte, file string) (any, bool, error) {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return nil, false, nil
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		der := block.Bytes
		if isEncryptedPEM(block) {
			pw, err := env.readPassword("Enter password for private key: ")
			if err != nil {
				return nil, false, err
			}
			der, err = decryptPEM(block, pw)
			clear(pw)
			if errors.Is(err, x509.IncorrectPasswordError) {
				return nil, false, kes.ErrIncorrectPassword
			}
			if err != nil {
				return nil, false, err
			}
			defer clear(der)
		}
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, false, fmt.Errorf("'%s' contains unsupported private key. Only ed25519 private keys are supported", file)
		}
		return key, true, nil
	}
}

//lint:ignore SA1019 kes writes and reads legacy encrypted PEM keys (--encrypt).
func isEncryptedPEM(b *pem.Block) bool { return x509.IsEncryptedPEMBlock(b) }

//lint:ignore SA1019 see isEncryptedPEM.
func decryptPEM(b *pem.Block, pw []byte) ([]byte, error) { return x509.DecryptPEMBlock(b, pw) }

// identityInfoJSON is the --json output of `kes identity info <identity>`.
type identityInfoJSON struct {
	Identity  kes.Identity `json:"identity"`
	IsAdmin   bool         `json:"admin,omitempty"`
	Policy    string       `json:"policy,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy kes.Identity `json:"created_by,omitempty"`
}

func identityInfo(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	p, client, err := conn.open(env, out)
	if err != nil {
		return err
	}
	role := func(admin bool) string {
		if admin {
			return p.style(ansiYellow, "Admin")
		}
		return "User"
	}
	if len(args) == 1 {
		info, err := client.DescribeIdentity(ctx, kes.Identity(args[0]))
		if err != nil {
			return fmt.Errorf("failed to describe identity: %w", err)
		}
		if out.JSON {
			return p.json(identityInfoJSON{kes.Identity(args[0]), info.IsAdmin, info.Policy, info.CreatedAt, info.CreatedBy}, p.term)
		}
		p.label(12, "Identity", p.style(ansiBold, args[0]))
		if info.Policy != "" {
			p.label(12, "Policy", info.Policy)
		}
		p.label(12, "Created At", info.CreatedAt.Local().Format(dateFormat))
		p.label(12, "Role", role(info.IsAdmin))
		if info.CreatedBy != "" {
			p.label(12, "Created By", info.CreatedBy.String())
		}
		return nil
	}
	self, err := client.DescribeSelf(ctx)
	if err != nil {
		return fmt.Errorf("failed to describe identity: %w", err)
	}
	if out.JSON {
		return p.json(self, p.term)
	}
	p.label(12, "Identity", p.style(ansiBold, self.Identity.String()))
	p.label(12, "Created At", self.CreatedAt.Local().Format(dateFormat))
	p.label(12, "Role", role(self.IsAdmin))
	if self.CreatedBy != "" {
		p.label(12, "Created By", self.CreatedBy.String())
	}
	if self.IsAdmin {
		return nil
	}
	p.label(12, "Policy", self.PolicyName)
	for _, r := range []struct {
		label string
		set   kes.PatternSet
	}{{"Allow", self.Allow}, {"Deny", self.Deny}} {
		for i, pattern := range slices.Sorted(maps.Keys(r.set)) {
			label := r.label
			if i > 0 {
				label = ""
			}
			p.label(12, label, "· "+pattern)
		}
	}
	return nil
}

func identityList(ctx context.Context, env *Env, conn *connFlags, out *outFlags, args []string) error {
	return listCommand(ctx, env, conn, out, args, "Identity", "identities", (*kes.Client).ListIdentities)
}

func identityAssign(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if err := client.AssignIdentity(ctx, args[1], kes.Identity(args[0])); err != nil {
		return fmt.Errorf("failed to assign policy %q to %q: %w", args[1], args[0], err)
	}
	return nil
}

func identityRemove(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	for _, id := range args {
		if err := client.DeleteIdentity(ctx, kes.Identity(id)); err != nil {
			return fmt.Errorf("failed to remove identity %q: %w", id, err)
		}
	}
	return nil
}

func identityForget(ctx context.Context, env *Env, conn *connFlags, _ *outFlags, args []string) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if err := client.ForgetIdentity(ctx, kes.Identity(args[0])); err != nil {
		return fmt.Errorf("failed to forget identity %q: %w", args[0], err)
	}
	return nil
}
