package main

import (
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (an *os.File, or anything with
// an Fd method, referring to a TTY). Terminal mode of spec cli.md §1 is
// isTerminal(stdout) || isTerminal(stderr).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newMigrateCmd(env *Env) *cobra.Command {
	var (
		opts                 migrateOptions
		server, enclave      string
		apiKey               string
		insecure, dryRunFlag bool
	)
	cmd := &cobra.Command{
		Use:   "migrate [-f | --merge] [--dry-run] --from <src.yml> --to <dst.yml> [PATTERN]",
		Short: "Migrate keys from one keystore to another",
		Long: `Copy the keys whose names match PATTERN (a shell glob; default '*') from the
keystore of one KES config file to the keystore of another. The stored value
of each key is copied unchanged, then every copied key is read back from the
target and compared with the source.

  --from FILE      the source KES config file (required)
  --to FILE        the target KES config file
  -f, --force      overwrite keys that exist at the target
  --merge          skip keys that exist at the target
  --dry-run        list what would be copied, skipped or overwritten; change nothing

Without -f or --merge a key that exists at the target stops the migration.
Both files must be complete KES configs; only their keystore sections are used.

The MinIO KMS flags -s/--server, -e/--enclave, -a/--api-key and -k/--insecure
are accepted as upstream, but migrating to MinIO KMS is not supported by
OpenKES: there is no MinIO KMS server to migrate to.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return errors.New("too many arguments. See 'kes migrate --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dryRun = dryRunFlag
			if len(args) == 1 {
				opts.pattern = args[0]
			}
			f := cmd.Flags()
			if err := checkMigrateFlags(env, &opts, f.Changed("server"), f.Changed("enclave"), f.Changed("api-key"),
				server, enclave, apiKey, insecure); err != nil {
				return err
			}
			return newMigrator(env).run(cmd.Context(), &opts)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%v. See 'kes migrate --help'", err)
	})
	fl := cmd.Flags()
	fl.StringVar(&opts.from, "from", "", "the source KES config file")
	fl.StringVar(&opts.to, "to", "", "the target KES config file")
	fl.StringVarP(&server, "server", "s", "", "MinIO KMS server endpoint (not supported by OpenKES)")
	fl.StringVarP(&enclave, "enclave", "e", "", "MinIO KMS enclave (not supported by OpenKES)")
	fl.StringVarP(&apiKey, "api-key", "a", "", "MinIO KMS API key (not supported by OpenKES)")
	fl.BoolVarP(&insecure, "insecure", "k", false, "skip MinIO KMS TLS verification (not supported by OpenKES)")
	fl.BoolVarP(&opts.force, "force", "f", false, "overwrite keys that exist at the target")
	fl.BoolVar(&opts.merge, "merge", false, "skip keys that exist at the target")
	fl.BoolVar(&dryRunFlag, "dry-run", false, "list what would be migrated, change nothing")
	return cmd
}

// checkMigrateFlags applies the flag rules of spec cli.md §11. The MinIO KMS
// values default to $MINIO_KMS_SERVER, $MINIO_KMS_ENCLAVE and
// $MINIO_KMS_API_KEY; only explicitly given flags conflict with --to.
func checkMigrateFlags(env *Env, o *migrateOptions, setServer, setEnclave, setAPIKey bool,
	server, enclave, apiKey string, insecure bool) error {
	if o.from == "" {
		return errors.New("no source specified. Use '--from' flag")
	}
	if o.force && o.merge {
		return errors.New("'-f / --force' and '--merge' must not be used at the same time")
	}
	if o.to != "" {
		switch {
		case setServer:
			return errors.New("'-s / --server' and '--to' must not be used at the same time")
		case setEnclave:
			return errors.New("'-e / --enclave' and '--to' must not be used at the same time")
		case setAPIKey:
			return errors.New("'-a / --api-key' and '--to' must not be used at the same time")
		case insecure:
			return errors.New("'-k / --insecure' and '--to' must not be used at the same time")
		}
		if _, err := path.Match(o.pattern, ""); err != nil {
			return fmt.Errorf("invalid pattern %q: %w", o.pattern, err)
		}
		return nil
	}
	if !setServer {
		server = env.Getenv("MINIO_KMS_SERVER")
	}
	if !setEnclave {
		enclave = env.Getenv("MINIO_KMS_ENCLAVE")
	}
	if !setAPIKey {
		apiKey = env.Getenv("MINIO_KMS_API_KEY")
	}
	switch {
	case server == "" && enclave == "" && apiKey == "":
		return errors.New("no target specified. Use '--to' flag")
	case server == "":
		return errors.New("no MinIO KMS server specified. Use '--server' flag or set MINIO_KMS_SERVER")
	case enclave == "":
		return errors.New("no MinIO KMS enclave specified. Use '--enclave' flag or set MINIO_KMS_ENCLAVE")
	case apiKey == "":
		return errors.New("no MinIO KMS API key specified. Use '--api-key' flag or set MINIO_KMS_API_KEY")
	}
	return errMinKMS
}

// errMinKMS is returned for a valid migration to MinIO KMS.
var errMinKMS = errors.New("migrating to MinIO KMS is not supported by OpenKES. Use '--to' with a KES config file")

// migrateOptions are the validated arguments of kes migrate.
type migrateOptions struct {
	from, to string
	pattern  string // shell glob; "" means "*"
	force    bool   // delete an existing target key, then create it
	merge    bool   // skip names that exist at the target
	dryRun   bool
}
