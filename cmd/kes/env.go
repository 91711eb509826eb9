package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/openkes/kes"
)

// Environment variables of the client commands and their fallback order,
// highest precedence first (spec cli.md §2). A lookup stops at the first
// variable that is set, even if it is empty.
var (
	serverVars   = []string{"MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"}
	apiKeyVars   = []string{"MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY"}
	keyFileVars  = []string{"MINIO_KES_KEY_FILE", "KES_CLIENT_KEY", "MINIO_KES_CLIENT_KEY"}
	certFileVars = []string{"MINIO_KES_CERT_FILE", "KES_CLIENT_CERT", "MINIO_KES_CLIENT_CERT"}
)

// defaultServer is the endpoint used when no server variable is set.
const defaultServer = "127.0.0.1:7373"

// lookup returns the value of the first of names that is set.
func (e *Env) lookup(names ...string) (string, bool) {
	for _, n := range names {
		if e.LookupEnv == nil {
			break
		}
		if v, ok := e.LookupEnv(n); ok {
			return v, true
		}
	}
	return "", false
}

// terminal reports whether the command runs in terminal mode.
func (e *Env) terminal() bool { return e.IsTerminal != nil && e.IsTerminal() }

// readPassword prints prompt on Stderr and reads a password.
func (e *Env) readPassword(prompt string) ([]byte, error) {
	fmt.Fprint(e.Stderr, prompt)
	if e.ReadPassword != nil {
		return e.ReadPassword()
	}
	return readLine(e.Stdin)
}

// connFlags are the connection flags of the client commands. Server and
// APIKey are flags of `kes ls` only; elsewhere they stay empty and the
// environment decides.
type connFlags struct {
	Insecure bool
	Enclave  string // accepted and ignored, as upstream does at HEAD
	Server   string
	APIKey   string
}

// register adds -k/--insecure and -e/--enclave to fs.
func (c *connFlags) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&c.Insecure, "insecure", "k", false, "skip verification of the server certificate")
	fs.StringVarP(&c.Enclave, "enclave", "e", "", "ignored; kept for old scripts")
}

// endpoints returns the server endpoints: the --server flag, else the
// environment, else the default.
func (c *connFlags) endpoints(env *Env) []string {
	s := c.Server
	if s == "" {
		var ok bool
		if s, ok = env.lookup(serverVars...); !ok {
			s = defaultServer
		}
	}
	var list []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list
}

// options returns the SDK options for the credentials of spec cli.md §2:
// an API key, or a private key file and a certificate file.
func (c *connFlags) options(env *Env) ([]kes.Option, error) {
	apiKey := c.APIKey
	if apiKey == "" {
		apiKey, _ = env.lookup(apiKeyVars...)
	}
	keyFile, _ := env.lookup(keyFileVars...)
	certFile, _ := env.lookup(certFileVars...)
	var opts []kes.Option
	if c.Insecure {
		opts = append(opts, kes.WithInsecureSkipVerify())
	}
	switch {
	case apiKey != "" && keyFile != "":
		return nil, errors.New("API key and private key file cannot be used at the same time")
	case apiKey != "" && certFile != "":
		return nil, errors.New("API key and certificate file cannot be used at the same time")
	case apiKey != "":
		key, err := kes.ParseAPIKey(apiKey)
		if err != nil {
			return nil, fmt.Errorf("parsing API key: %w", err)
		}
		return append(opts, kes.WithAPIKey(key)), nil
	case keyFile == "" && certFile == "":
		return nil, errors.New("no API key specified. Consider setting MINIO_KES_API_KEY")
	case certFile == "":
		return nil, errors.New("no certificate file specified. Consider setting MINIO_KES_CERT_FILE")
	case keyFile == "":
		return nil, errors.New("no private key file specified. Consider setting MINIO_KES_KEY_FILE")
	}
	cert, err := kes.LoadClientCertificate(certFile, keyFile, func() ([]byte, error) {
		return env.readPassword("Enter password for private key: ")
	})
	if err != nil {
		return nil, err
	}
	return append(opts, kes.WithCertificate(cert)), nil
}

// client returns a client of the configured servers.
func (c *connFlags) client(env *Env) (*kes.Client, error) {
	opts, err := c.options(env)
	if err != nil {
		return nil, err
	}
	return kes.NewClient(c.endpoints(env), opts...)
}

// open returns the printer for out and a client of the configured servers:
// what a command that talks to a server and prints needs first.
func (c *connFlags) open(env *Env, out *outFlags) (*printer, *kes.Client, error) {
	p, err := newPrinter(env, out)
	if err != nil {
		return nil, nil, err
	}
	client, err := c.client(env)
	if err != nil {
		return nil, nil, err
	}
	return p, client, nil
}
