package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage:
  kesload run [flags]    measure kes against a bare TLS server (see -h)
  kesload soak [flags]   drive a MinIO-like mixed load for a while and check
                         for errors, goroutine, RSS and fd growth (see -h)
  kesload pairs [flags] [kes...]
                         create+delete pairs of new keys on an fs store
                         (or -store vault), comparing kes binaries in one
                         run (see -h)
  kesload bare [flags]   serve the bare server (started by run)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kesload:", err)
		os.Exit(1)
	}
}

// run dispatches the sub-commands.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "run":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	case "pairs":
		return runPairs(ctx, args[1:], stdout, stderr)
	case "bare":
		return runBare(ctx, args[1:], stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// runLoad is "kesload run".
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kesload run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.KES, "kes", "", "the kes binary; empty builds ./cmd/kes into the work directory")
	fs.IntVar(&o.Requests, "n", 20000, "requests per run (one server, protocol and operation)")
	fs.IntVar(&o.Clients, "clients", 32, "concurrent clients")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; the table shows medians")
	fs.IntVar(&o.Warmup, "warmup", 100, "warm-up requests per client, server, protocol and operation")
	audit := fs.String("audit", "both", "kes servers by where their audit log goes: both (file,null) or a list of file (stdout to a file), null (stdout to /dev/null), off, sink (log.audit_file) and syslog (log.audit_syslog, UDP)")
	fs.DurationVar(&o.RunTimeout, "run-timeout", 2*time.Minute, "deadline of one run")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait before reading the RSS")
	timeout := fs.Duration("timeout", 30*time.Minute, "deadline of the whole measurement")
	dir := fs.String("dir", "", "work directory (certificates, configs, key stores, logs); empty means a temp dir that is removed")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	protos := fs.String("proto", "h1,h2", "protocols to measure: h1 (HTTP/1.1), h2 (HTTP/2) or both")
	hsmFile := fs.String("hsm", "", "a file with an hsm section (docs/hsm.md): also measure a kes server with it")
	fs.StringVar(&o.Base, "base", "", "a second kes binary (e.g. built from main): each audit mode also runs a server of it (name-base), to measure before and after in one run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var err error
	if *hsmFile != "" {
		b, err := os.ReadFile(*hsmFile)
		if err != nil {
			return err
		}
		o.HSM = string(b)
	}
	if o.Audit, err = parseAudit(*audit); err != nil {
		return err
	}
	if o.Protos, err = parseProtos(*protos); err != nil {
		return err
	}
	if !*quiet {
		o.Log = stderr
	}
	if o.Dir = *dir; o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "kesload-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.Dir)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if o.KES == "" {
		if o.KES, err = BuildKES(ctx, o.Dir); err != nil {
			return err
		}
	}
	rep, err := Run(ctx, o)
	if err != nil {
		return err
	}
	return rep.Print(stdout)
}

// parseProtos parses the -proto flag.
func parseProtos(s string) ([]Proto, error) {
	var protos []Proto
	for name := range strings.SplitSeq(s, ",") {
		switch name {
		case "h1":
			protos = append(protos, HTTP1)
		case "h2":
			protos = append(protos, HTTP2)
		default:
			return nil, fmt.Errorf("-proto %q: want h1, h2 or h1,h2", s)
		}
	}
	return protos, nil
}

// runSoak is "kesload soak". It prints the report and fails if the server
// failed the soak.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kesload soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o SoakOptions
	fs.StringVar(&o.KES, "kes", "", "the kes binary; empty builds ./cmd/kes into the work directory")
	fs.DurationVar(&o.Duration, "d", time.Minute, "how long the load runs (30m for a release)")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent clients, half HTTP/1.1, half HTTP/2")
	fs.IntVar(&o.Rate, "rate", 500, "requests per second of all clients; negative: as fast as they can")
	fs.DurationVar(&o.Sample, "sample", time.Second, "interval of the RSS, fd and goroutine samples")
	dir := fs.String("dir", "", "work directory; empty means a temp dir that is removed")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if !*quiet {
		o.Log = stderr
	}
	var err error
	if o.Dir = *dir; o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "kesload-soak-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.Dir)
	}
	if o.KES == "" {
		if o.KES, err = BuildKES(ctx, o.Dir); err != nil {
			return err
		}
	}
	rep, err := Soak(ctx, o)
	if err != nil {
		return err
	}
	if err := rep.Print(stdout); err != nil {
		return err
	}
	return rep.Check()
}

// runPairs is "kesload pairs [flags] [kes binary...]": with no binary it
// builds ./cmd/kes; name two (e.g. one built from main and one from a
// branch, or an upstream binary) to get their ratio from one run.
func runPairs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kesload pairs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o PairsOptions
	fs.IntVar(&o.Clients, "clients", 32, "concurrent clients")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "duration of one server's run per round")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; the table shows medians")
	proto := fs.String("proto", "h1", "h1 (a connection per client) or h2 (one shared connection)")
	dir := fs.String("dir", "", "work directory; empty means a temp dir that is removed")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	fs.StringVar(&o.Retention, "retention", "", "key_deletion.retention of the servers (e.g. 0: delete at once); empty: the server's default")
	fs.StringVar(&o.Store, "store", StoreFS, "the kes servers' key store: fs, or vault (a Vault dev server started for the run, a K/V mount per kes server, and Vault's own API client as one more row)")
	fs.StringVar(&o.VaultBin, "vault-bin", os.Getenv(envVaultBin), "the Vault server binary for -store vault (scripts/install-vault.sh prints it); default $"+envVaultBin)
	fs.StringVar(&o.VaultKV, "vault-kv", "v2", "the K/V engine version for -store vault: v1 or v2")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Store == StoreVault && o.VaultBin == "" {
		return errNoVaultBin // before building kes
	}
	protos, err := parseProtos(*proto)
	if err != nil || len(protos) != 1 {
		return fmt.Errorf("-proto %q: want h1 or h2", *proto)
	}
	o.Proto, o.KES = protos[0], fs.Args()
	if !*quiet {
		o.Log = stderr
	}
	if o.Dir = *dir; o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "kesload-pairs-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.Dir)
	}
	if len(o.KES) == 0 {
		bin, err := BuildKES(ctx, o.Dir)
		if err != nil {
			return err
		}
		o.KES = []string{bin}
	}
	rep, err := Pairs(ctx, o)
	if err != nil {
		return err
	}
	return rep.Print(stdout)
}
