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
// create+delete pairs of new keys on an fs key store (issue 12). KES and
// Dir are required; zero values of the other fields mean the defaults.
type PairsOptions struct {
	// KES are the kes binaries to compare, each run as its own server with
	// its own fs key store in Dir, measured in turn in every round. The
	// first is the reference of the ratio column.
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
}

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
	}
	return o, nil
}

// PairsSample is one server's run in one round.
type PairsSample struct {
	Pairs   int           // create+delete pairs completed
	Elapsed time.Duration // wall time of the run
	CPU     time.Duration // server CPU time during the run
	P50     time.Duration // latency of one pair (create, then delete)
	P99     time.Duration
}

// PairsPerSec returns the pairs completed per second.
func (s PairsSample) PairsPerSec() float64 { return float64(s.Pairs) / s.Elapsed.Seconds() }

// PairsRow is the result of one server: its samples of every round.
type PairsRow struct {
	Name    string // "kes-0", "kes-1", ... in the order of PairsOptions.KES
	Binary  string
	Samples []PairsSample
}

// PairsReport is the result of Pairs.
type PairsReport struct {
	Options PairsOptions
	Rows    []PairsRow
}

// Pairs starts a kes server with an empty fs key store per binary of o and
// measures, round after round and server after server (alternating the
// order), how many create+delete pairs of new keys o.Clients concurrent
// clients complete in o.Duration. Every reply must be 200.
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
	var servers []*pairsServer
	defer func() {
		for _, s := range servers {
			s.proc.Stop()
			s.load.Close()
		}
	}()
	for i, bin := range o.KES {
		s, err := startPairsServer(ctx, "kes-"+strconv.Itoa(i), bin, o, creds)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
		rep.Rows = append(rep.Rows, PairsRow{Name: s.name, Binary: bin})
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

// pairsServer is a kes server under the pairs load.
type pairsServer struct {
	name string
	base string // https://addr
	proc *child
	load *loadClient
}

func startPairsServer(ctx context.Context, name, bin string, o PairsOptions, creds *credentials) (*pairsServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	store := filepath.Join(o.Dir, name+"-keys")
	config := filepath.Join(o.Dir, name+".yml")
	extra := ""
	if o.Retention != "" {
		extra = fmt.Sprintf("key_deletion:\n  retention: %q\n", o.Retention)
	}
	if err := writeKESConfig(config, addr, creds, store, "", extra); err != nil {
		return nil, err
	}
	proc, err := startChild(name, bin, []string{"server", "--config", config}, nil, nil, o.Dir)
	if err != nil {
		return nil, err
	}
	s := &pairsServer{name: name, base: "https://" + addr, proc: proc}
	setup := newSetupClient(creds)
	defer setup.CloseIdleConnections()
	if err := proc.waitReady(ctx, func(ctx context.Context) error {
		_, err := call(ctx, setup, http.MethodGet, s.base+"/v1/ready", nil)
		return err
	}); err != nil {
		proc.Stop()
		return nil, err
	}
	s.load = newLoadClient(o.Proto, o.Clients, creds.clientTLS())
	return s, nil
}

// run sends pairs from every client for o.Duration.
func (s *pairsServer) run(ctx context.Context, o PairsOptions, round int) (PairsSample, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cpu0, err := readCPU(s.proc.Pid())
	if err != nil {
		return PairsSample{}, err
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	lat := make([][]time.Duration, len(s.load.workers))
	var wg sync.WaitGroup
	for w, hc := range s.load.workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("pair-%d-%d-%d", round, w, i)
				t0 := time.Now()
				if _, err := call(ctx, hc, http.MethodPost, s.base+"/v1/key/create/"+name, nil); err != nil {
					cancel(err)
					return
				}
				if _, err := call(ctx, hc, http.MethodDelete, s.base+"/v1/key/delete/"+name, nil); err != nil {
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
	cpu1, err := readCPU(s.proc.Pid())
	if err != nil {
		return PairsSample{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	smp := PairsSample{Pairs: len(all), Elapsed: elapsed, CPU: cpu1.Best() - cpu0.Best()}
	if len(all) > 0 {
		smp.P50, smp.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return smp, nil
}

// Print writes the report: per server the medians over the rounds of
// pairs/s, pair latency and server CPU per pair, and the ratio of its
// pairs/s to the first server's (median of the per-round ratios).
func (r *PairsReport) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "create+delete pairs, %d clients, %v, %d × %v", r.Options.Clients, r.Options.Proto, r.Options.Rounds, r.Options.Duration)
	if r.Options.Retention != "" {
		fmt.Fprintf(tw, ", key_deletion.retention %s", r.Options.Retention)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "server\tpairs/s\tratio\tp50\tp99\tcpu µs/pair\tbinary")
	for _, row := range r.Rows {
		var rate, ratio, p50, p99, cpu []float64
		for i, s := range row.Samples {
			rate = append(rate, s.PairsPerSec())
			ratio = append(ratio, s.PairsPerSec()/r.Rows[0].Samples[i].PairsPerSec())
			p50 = append(p50, float64(s.P50))
			p99 = append(p99, float64(s.P99))
			if s.Pairs > 0 {
				cpu = append(cpu, float64(s.CPU.Microseconds())/float64(s.Pairs))
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%v\t%v\t%.0f\t%s\n", row.Name, median(rate), median(ratio),
			time.Duration(median(p50)).Round(time.Microsecond*10), time.Duration(median(p99)).Round(time.Microsecond*10), median(cpu), row.Binary)
	}
	return tw.Flush()
}
