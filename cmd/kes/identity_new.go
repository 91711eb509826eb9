package main

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// identityNewFlags are the flags of `kes identity new`.
type identityNewFlags struct {
	Key, Cert string
	IPs, DNS  []string
	Expiry    time.Duration
	Encrypt   bool
	Force     bool
}

// newIdentityNewCmd returns `kes identity new`; tool selects the v0.17
// form `kes tool identity new`, whose validity flag is -t/--time.
func newIdentityNewCmd(env *Env, tool bool) *cobra.Command {
	var f identityNewFlags
	cmd := &cobra.Command{
		Use:   "new [<subject>]",
		Short: "Create a new API key, and optionally a private key and certificate",
		Long: `Create a new API key, and optionally a private key and certificate.

With --key and --cert, also writes the API key's Ed25519 private key
(PKCS#8) and a self-signed certificate for it, valid for --expiry.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var subject string
			if len(args) == 1 {
				subject = args[0]
			}
			expiryFlag := "expiry"
			if tool {
				expiryFlag = "time"
			}
			for _, name := range []string{"ip", "dns", expiryFlag, "encrypt", "force"} {
				if cmd.Flags().Changed(name) && (f.Key == "" || f.Cert == "") {
					return fmt.Errorf("'--%s' requires '--key' and '--cert'", name)
				}
			}
			return identityNew(env, &f, subject)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.Key, "key", "", "write the private key to this file")
	fs.StringVar(&f.Cert, "cert", "", "write a certificate to this file")
	fs.StringSliceVar(&f.IPs, "ip", nil, "add an IP address SAN to the certificate (repeatable)")
	fs.StringSliceVar(&f.DNS, "dns", nil, "add a DNS name SAN to the certificate (repeatable)")
	if tool {
		fs.DurationVarP(&f.Expiry, "time", "t", 720*time.Hour, "how long the certificate is valid")
	} else {
		fs.DurationVar(&f.Expiry, "expiry", 720*time.Hour, "how long the certificate is valid")
		fs.BoolVar(&f.Encrypt, "encrypt", false, "encrypt the private key with a password")
	}
	fs.BoolVarP(&f.Force, "force", "f", false, "overwrite existing files")
	return cmd
}

// identityNew creates an API key and, with f.Key and f.Cert, its private
// key and certificate files.
func identityNew(env *Env, f *identityNewFlags, subject string) error {
	if (f.Key == "") != (f.Cert == "") {
		if f.Key == "" {
			return errors.New("no private key file specified. Use '--key' together with '--cert'")
		}
		return errors.New("no certificate file specified. Use '--cert' together with '--key'")
	}
	if f.Key != "" {
		if f.Expiry <= 0 {
			return fmt.Errorf("invalid expiry '%v': must be positive", f.Expiry)
		}
		for _, file := range []string{f.Key, f.Cert} {
			if _, err := os.Stat(file); err == nil && !f.Force {
				return fmt.Errorf("'%s' already exists. Use '--force' to overwrite it", file)
			}
		}
	}
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		return fmt.Errorf("failed to generate API key: %w", err)
	}
	if f.Key != "" {
		if err := writeIdentityFiles(env, f, key, subject); err != nil {
			return err
		}
	}
	w := env.Stdout
	fmt.Fprintf(w, "Your API key:\n\n   %s\n\n", key.Secret())
	fmt.Fprintf(w, "This is the only time it is shown. Keep it secret and store it in a safe place.\n\n")
	fmt.Fprintf(w, "Your identity:\n\n   %s\n\n", key.Identity())
	if f.Key != "" {
		fmt.Fprintf(w, "Private key:  %s\nCertificate:  %s\n\n", f.Key, f.Cert)
	}
	fmt.Fprintf(w, "The identity is not a secret. Compute it again with:\n\n   $ kes identity of %s\n", key.Secret())
	if f.Cert != "" {
		fmt.Fprintf(w, "   $ kes identity of %s\n", f.Cert)
	}
	return nil
}

// writeIdentityFiles writes the PKCS#8 private key (0600, encrypted with
// --encrypt) and a self-signed certificate (0644) of key.
func writeIdentityFiles(env *Env, f *identityNewFlags, key kes.APIKey, subject string) error {
	der, err := x509.MarshalPKCS8PrivateKey(key.Private())
	if err != nil {
		return fmt.Errorf("failed to encode private key: %w", err)
	}
	defer clear(der)
	block := &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	if f.Encrypt {
		pw, err := env.readPassword("Enter password for private key: ")
		if err != nil {
			return err
		}
		defer clear(pw)
		confirm, err := env.readPassword("Confirm password for private key: ")
		if err != nil {
			return err
		}
		defer clear(confirm)
		if subtle.ConstantTimeCompare(pw, confirm) != 1 {
			return errors.New("passwords don't match")
		}
		if block, err = encryptPEM(block, pw); err != nil {
			return fmt.Errorf("failed to encrypt private key: %w", err)
		}
	}
	cert, err := kes.GenerateCertificate(key, &kes.CertificateOptions{
		Subject:  subject,
		Validity: f.Expiry,
		Server:   true,
		IPs:      f.IPs,
		DNSNames: f.DNS,
	})
	if err != nil {
		return fmt.Errorf("failed to create certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(block)
	defer clear(keyPEM)
	if err := writeFile(f.Key, keyPEM, 0o600, f.Force); err != nil {
		return err
	}
	return writeFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644, f.Force)
}

// encryptPEM encrypts b as upstream's --encrypt does: a legacy (RFC 1423)
// encrypted PEM block, the only form old kes versions read.
func encryptPEM(b *pem.Block, pw []byte) (*pem.Block, error) {
	//lint:ignore SA1019 see the doc comment.
	return x509.EncryptPEMBlock(rand.Reader, b.Type, b.Bytes, pw, x509.PEMCipherAES256)
}

// writeFile writes data to name with mode; existing files are replaced
// only with force.
func writeFile(name string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	file, err := os.OpenFile(name, flags, mode)
	if err != nil {
		return fmt.Errorf("failed to write '%s': %w", name, err)
	}
	if _, err = bytes.NewReader(data).WriteTo(file); err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, mode) // an overwritten file keeps its old mode otherwise
	}
	if err != nil {
		return fmt.Errorf("failed to write '%s': %w", name, err)
	}
	return nil
}
