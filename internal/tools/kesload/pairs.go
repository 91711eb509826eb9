package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
)

// PairsOptions configure "kesload pairs": key creation measured as
// create+delete pairs of new keys (issue 12). KES and Dir are required;
// zero values of the other fields mean the defaults.
type PairsOptions struct {
	// KES are the kes binaries to compare, each run as its own server with
	// its own key store, measured in turn in every round. The first is the
	// reference of the ratio column.
	KES      []string
	Dir      string
	Clients  int           // concurrent clients; zero means 32
	Duration time.Duration // of one server's run in one round; zero means 10s
	Rounds   int           // zero means 3
	Proto    Proto         // HTTP1: a connection per client; HTTP2: one shared
	Log      io.Writer     // progress lines; nil means none

	// Retention is written as the servers' key_deletion.retention (a Go
	// duration, "0" deletes at once); empty means none is written: the
	// server's default, soft deletion for a week.
	Retention string

	// Store is the kes servers' key store: StoreFS (also the zero value),
	// an empty fs store in Dir each; or StoreVault: one Vault dev server
	// (VaultBin) started for the measurement on 127.0.0.1, each kes server
	// on a K/V mount of its own, and one more row, "vault-api": Vault's Go
	// API client writing and deleting secrets on a mount of its own (see
	// vaultPairs), which bounds what any KES can do on that Vault.
	Store    string
	VaultBin string // the Vault server binary; required for StoreVault
	VaultKV  string // K/V engine version, "v1" or "v2"; empty means v2
}

// Key stores of [PairsOptions.Store].
const (
	StoreFS    = "fs"
	StoreVault = "vault"
)

func (o PairsOptions) withDefaults() (PairsOptions, error) {
	if o.Clients == 0 {
		o.Clients = 32
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Store == "" {
		o.Store = StoreFS
	}
	if o.VaultKV == "" {
		o.VaultKV = "v2"
	}
	switch {
	case len(o.KES) == 0 || o.Dir == "":
		return o, errors.New("kesload: pairs needs a kes binary and a work directory")
	case o.Clients < 0 || o.Clients > maxClients:
		return o, fmt.Errorf("kesload: clients %d out of range [1, %d]", o.Clients, maxClients)
	case o.Rounds < 0 || o.Rounds > maxRounds:
		return o, fmt.Errorf("kesload: rounds %d out of range [1, %d]", o.Rounds, maxRounds)
	case o.Duration < 0 || o.Duration > time.Hour:
		return o, fmt.Errorf("kesload: duration %v out of range (0, 1h]", o.Duration)
	case o.Proto < 0 || o.Proto >= numProtos:
		return o, fmt.Errorf("kesload: invalid protocol %d", o.Proto)
	case o.Store != StoreFS && o.Store != StoreVault:
		return o, fmt.Errorf("kesload: key store %q: want fs or vault", o.Store)
	case o.VaultKV != "v1" && o.VaultKV != "v2":
		return o, fmt.Errorf("kesload: vault K/V version %q: want v1 or v2", o.VaultKV)
	case o.Store == StoreVault && o.VaultBin == "":
		return o, errNoVaultBin
	}
	return o, nil
}

// PairsSample is one server's run in one round.
type PairsSample struct {
	Pairs    int           // create+delete pairs completed
	Elapsed  time.Duration // wall time of the run
	CPU      time.Duration // server CPU time during the run; 0 for vault-api
	VaultCPU time.Duration // Vault's CPU time during the run (StoreVault)
	P50      time.Duration // latency of one pair (create, then delete)
	P99      time.Duration
}

// PairsPerSec returns the pairs completed per second.
func (s PairsSample) PairsPerSec() float64 { return float64(s.Pairs) / s.Elapsed.Seconds() }

// PairsRow is the result of one server: its samples of every round.
type PairsRow struct {
	Name    string // "kes-0", "kes-1", ... in the order of PairsOptions.KES; "vault-api"
	Binary  string
	Samples []PairsSample
}

// PairsReport is the result of Pairs.
type PairsReport struct {
	Options PairsOptions
	Vault   string // the Vault server's version (StoreVault)
	Rows    []PairsRow
}

// Pairs starts a kes server with an empty key store per binary of o and
// measures, round after round and server after server (alternating the
// order), how many create+delete pairs of new keys o.Clients concurrent
// clients complete in o.Duration. Every reply must be 200. With
// StoreVault, the Vault API client takes its turn as one more server.
func Pairs(ctx context.Context, o PairsOptions) (*PairsReport, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	creds, err := newCredentials(o.Dir)
	if err != nil {
		return nil, err
	}
	rep := &PairsReport{Options: o}
	var servers []*pairsServer // the kes servers, then vault-api
	var vault *vaultServer
	var apiServer *pairsServer
	defer func() {
		for _, s := range servers {
			s.close()
		}
		if apiServer != nil && !slices.Contains(servers, apiServer) {
			apiServer.close()
		}
		if vault != nil { // after the kes servers that use it
			vault.stop()
		}
	}()
	stores := make([]string, len(o.KES))
	if o.Store == StoreFS {
		for i := range o.KES {
			stores[i] = fsKeyStore(filepath.Join(o.Dir, "kes-"+strconv.Itoa(i)+"-keys"))
		}
	} else {
		if vault, err = startVault(ctx, o.VaultBin, o.Dir); err != nil {
			return nil, err
		}
		rep.Vault = vault.version
		if stores, apiServer, err = vault.pairsSetup(ctx, o); err != nil {
			return nil, err
		}
	}
	for i, bin := range o.KES {
		s, err := startPairsServer(ctx, "kes-"+strconv.Itoa(i), bin, stores[i], o, creds)
		if err != nil {
			return nil, err
		}
		s.vault = vault
		servers = append(servers, s)
	}
	if apiServer != nil {
		servers = append(servers, apiServer)
	}
	for _, s := range servers {
		rep.Rows = append(rep.Rows, PairsRow{Name: s.name, Binary: s.binary})
	}
	for round := range o.Rounds {
		for k := range servers {
			i := k
			if round%2 == 1 {
				i = len(servers) - 1 - k
			}
			smp, err := servers[i].run(ctx, o, round)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Log, "round %d %s: %.0f pairs/s, p50 %v, p99 %v\n", round+1, servers[i].name, smp.PairsPerSec(), smp.P50, smp.P99)
			rep.Rows[i].Samples = append(rep.Rows[i].Samples, smp)
		}
	}
	return rep, nil
}

// pairsServer is a kes server under the pairs load, or the Vault API
// client.
type pairsServer struct {
	name, binary string
	proc         *child       // the kes server; nil for the Vault API client
	vault        *vaultServer // the Vault server the pairs reach, if any
	workers      int
	pair         func(ctx context.Context, worker int, name string) error
	close        func()
}

func startPairsServer(ctx context.Context, name, bin, keystore string, o PairsOptions, creds *credentials) (*pairsServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(o.Dir, name+".yml")
	extra := ""
	if o.Retention != "" {
		extra = fmt.Sprintf("key_deletion:\n  retention: %q\n", o.Retention)
	}
	if err := writeKESConfig(config, addr, creds, keystore, "", extra); err != nil {
		return nil, err
	}
	proc, err := startChild(name, bin, []string{"server", "--config", config}, nil, nil, o.Dir)
	if err != nil {
		return nil, err
	}
	base := "https://" + addr
	setup := newSetupClient(creds)
	defer setup.CloseIdleConnections()
	if err := proc.waitReady(ctx, func(ctx context.Context) error {
		_, err := call(ctx, setup, http.MethodGet, base+"/v1/ready", nil)
		return err
	}); err != nil {
		proc.Stop()
		return nil, err
	}
	load := newLoadClient(o.Proto, o.Clients, creds.clientTLS())
	return &pairsServer{
		name: name, binary: bin, proc: proc, workers: o.Clients,
		pair: func(ctx context.Context, w int, name string) error {
			hc := load.workers[w]
			if _, err := call(ctx, hc, http.MethodPost, base+"/v1/key/create/"+name, nil); err != nil {
				return err
			}
			_, err := call(ctx, hc, http.MethodDelete, base+"/v1/key/delete/"+name, nil)
			return err
		},
		close: func() {
			proc.Stop()
			load.Close()
		},
	}, nil
}

// cpu returns the CPU time of the kes server and of Vault so far.
func (s *pairsServer) cpu() (kes, vault time.Duration, err error) {
	if s.proc != nil {
		u, err := readCPU(s.proc.Pid())
		if err != nil {
			return 0, 0, err
		}
		kes = u.Best()
	}
	if s.vault != nil {
		u, err := readCPU(s.vault.proc.Pid())
		if err != nil {
			return 0, 0, err
		}
		vault = u.Best()
	}
	return kes, vault, nil
}

// run sends pairs from every worker for o.Duration.
func (s *pairsServer) run(ctx context.Context, o PairsOptions, round int) (PairsSample, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	kes0, vault0, err := s.cpu()
	if err != nil {
		return PairsSample{}, err
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	lat := make([][]time.Duration, s.workers)
	var wg sync.WaitGroup
	for w := range s.workers {
		// Room for the pairs of a fast worker, so that recording
		// allocates only in a long run.
		lat[w] = make([]time.Duration, 0, 1024)
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("pair-%d-%d-%d", round, w, i)
				t0 := time.Now()
				if err := s.pair(ctx, w, name); err != nil {
					cancel(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return PairsSample{}, fmt.Errorf("%s: %w", s.name, err)
	}
	kes1, vault1, err := s.cpu()
	if err != nil {
		return PairsSample{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return PairsSample{Pairs: len(all), Elapsed: elapsed, CPU: kes1 - kes0, VaultCPU: vault1 - vault0,
		P50: percentile(all, 0.50), P99: percentile(all, 0.99)}, nil
}

// Print writes the report: per server the medians over the rounds of
// pairs/s, pair latency and server CPU per pair, and the ratio of its
// pairs/s to the first server's (median of the per-round ratios). With
// StoreVault also Vault's CPU per pair and the ratio of the pairs/s to
// vault-api's.
func (r *PairsReport) Print(w io.Writer) error {
	o := r.Options
	onVault := o.Store == StoreVault
	store := "fs key store"
	if onVault {
		store = fmt.Sprintf("%s dev server (in memory, plain HTTP on loopback), K/V %s", r.Vault, o.VaultKV)
	}
	fmt.Fprintf(w, "create+delete pairs, %d clients, %v, %d × %v, %s", o.Clients, o.Proto, o.Rounds, o.Duration, store)
	if o.Retention != "" {
		fmt.Fprintf(w, ", key_deletion.retention %s", o.Retention)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "server\tpairs/s\tratio\tp50\tp99\tcpu µs/pair\t"
	if onVault {
		head += "of vault-api\tvault cpu µs/pair\t"
	}
	fmt.Fprintln(tw, head+"binary")
	api := r.row("vault-api")
	for _, row := range r.Rows {
		var rate, ratio, ofAPI, p50, p99, cpu, vcpu []float64
		for i, s := range row.Samples {
			rate = append(rate, s.PairsPerSec())
			ratio = append(ratio, s.PairsPerSec()/r.Rows[0].Samples[i].PairsPerSec())
			if api != nil {
				ofAPI = append(ofAPI, s.PairsPerSec()/api.Samples[i].PairsPerSec())
			}
			p50 = append(p50, float64(s.P50))
			p99 = append(p99, float64(s.P99))
			if s.Pairs > 0 {
				cpu = append(cpu, float64(s.CPU.Microseconds())/float64(s.Pairs))
				vcpu = append(vcpu, float64(s.VaultCPU.Microseconds())/float64(s.Pairs))
			}
		}
		ratioCol, cpuCol := fmt.Sprintf("%.2f", median(ratio)), fmt.Sprintf("%.0f", median(cpu))
		if row.Name == "vault-api" {
			ratioCol, cpuCol = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%v\t%v\t%s\t", row.Name, median(rate), ratioCol,
			time.Duration(median(p50)).Round(time.Microsecond*10), time.Duration(median(p99)).Round(time.Microsecond*10), cpuCol)
		if onVault {
			fmt.Fprintf(tw, "%.2f\t%.0f\t", median(ofAPI), median(vcpu))
		}
		fmt.Fprintln(tw, row.Binary)
	}
	return tw.Flush()
}

// row returns the row of the server name, or nil.
func (r *PairsReport) row(name string) *PairsRow {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}
