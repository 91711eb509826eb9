package main

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/spf13/cobra"
)

// newToolCmd returns `kes tool`, the command group of releases up to
// v0.17 that old scripts still call: `tool identity new` and `tool
// identity of`.
func newToolCmd(env *Env) *cobra.Command {
	tool := groupCmd("tool", "Commands of releases up to v0.17")
	tool.Hidden = true
	identity := groupCmd("identity", "Identity commands of releases up to v0.17")
	var hashName string
	of := &cobra.Command{
		Use:   "of [--hash SHA-256|SHA-384|SHA-512] [<cert>]",
		Short: "Print the identity of a certificate (stdin if none)",
		Args:  maxArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return toolIdentityOf(env, hashName, args)
		},
	}
	of.Flags().StringVar(&hashName, "hash", "SHA-256", "hash function: SHA-256, SHA-384 or SHA-512")
	identity.AddCommand(newIdentityNewCmd(env, true), of)
	tool.AddCommand(identity)
	return tool
}

// toolIdentityOf prints the hash of the certificate's public key. Servers
// only ever use SHA-256; the others are what v0.17 offered.
func toolIdentityOf(env *Env, hashName string, args []string) error {
	var h hash.Hash
	switch hashName {
	case "SHA-256":
		h = sha256.New()
	case "SHA-384":
		h = sha512.New384()
	case "SHA-512":
		h = sha512.New()
	default:
		return fmt.Errorf("invalid hash '%s'. Use SHA-256, SHA-384 or SHA-512", hashName)
	}
	var (
		data []byte
		err  error
	)
	if len(args) == 1 {
		data, err = readPEM(args[0])
	} else {
		data, err = io.ReadAll(io.LimitReader(env.Stdin, maxPEMSize))
	}
	if err != nil {
		return err
	}
	cert, ok := firstCertificate(data)
	if !ok {
		if cert, err = x509.ParseCertificate(data); err != nil {
			return errors.New("no valid certificate found")
		}
	}
	h.Write(cert.RawSubjectPublicKeyInfo)
	return printValue(env, hex.EncodeToString(h.Sum(nil)))
}
