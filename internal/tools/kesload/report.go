package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// idleRSSTarget is issue 2's bound on the idle RSS of the kes server;
// issue 12 sets none.
const idleRSSTarget = 25 << 20

// Issue 12's targets: server CPU per request at most 1.05x the bare
// server's with the audit log off and 1.10x with audit to a file, on both
// protocols, and a p99 latency within 10 % of the bare server's.
const (
	cpuTargetAuditOff  = 1.05
	cpuTargetAuditFile = 1.10
	p99Target          = 1.10
)

// cpuTarget returns issue 12's bound on the kes/bare CPU ratio of a kes
// server whose audit log goes where mode says, or 0 if it sets none: "null"
// (stdout to /dev/null) counts as off, as nobody reads it; "file" (stdout
// to a file) and "sink" (log.audit_file) are audit to a file; syslog has
// no target.
func cpuTarget(mode Audit) float64 {
	switch mode {
	case AuditOff, AuditNull:
		return cpuTargetAuditOff
	case AuditFile, AuditSink:
		return cpuTargetAuditFile
	}
	return 0
}

// Report is the result of [Run].
type Report struct {
	Requests, Clients, Rounds int
	Precise                   bool // every CPU figure is from schedstat
	Rows                      []Row
	Memory                    []Memory
}

// Row compares one kes server with the bare server for one protocol and
// operation. Figures are medians over the rounds.
type Row struct {
	Proto         Proto
	Op            Op
	Server        string // the kes server's name
	Stdout        string // where its audit log went
	KESMicros     float64
	BareMicros    float64
	Ratio         float64 // median of the rounds' kes/bare ratios
	CPUTarget     float64 // issue 12's bound on Ratio; 0 if none (cpuTarget)
	KESReqPerSec  float64
	BareReqPerSec float64
	Suspect       bool // some round's CPU readings disagree (Sample.Suspect)
	KES, Bare     []Sample

	// Client-observed latency percentiles, medians of the rounds, and the
	// median of the rounds' ratios of the kes server's p99 to the bare
	// server's.
	KESP50, KESP99, BareP50, BareP99 time.Duration
	P99Ratio                         float64
}

// OK reports whether the CPU ratio meets its target; a row without a
// target is OK.
func (r Row) OK() bool { return r.CPUTarget == 0 || r.Ratio <= r.CPUTarget }

// LatencyOK reports whether the p99 ratio meets issue 12's target.
func (r Row) LatencyOK() bool { return r.P99Ratio <= p99Target }

// Memory is the VmRSS of one server, in bytes.
type Memory struct {
	Server          string
	Idle, AfterLoad int64
}

func newReport(s *Session, samples map[cell][]Sample, afterRSS map[string]int64) *Report {
	o := s.opts
	rep := &Report{Requests: o.Requests, Clients: o.Clients, Rounds: o.Rounds, Precise: true}
	bare := s.Bare()
	for _, p := range o.Protos {
		for op := range numOps {
			for _, srv := range s.Servers[:len(s.Servers)-1] {
				rep.Rows = append(rep.Rows, newRow(p, op, srv, samples[cell{srv.Name, p, op}], samples[cell{bare.Name, p, op}]))
			}
		}
	}
	for _, srv := range s.Servers {
		rep.Memory = append(rep.Memory, Memory{Server: srv.Name, Idle: srv.IdleRSS, AfterLoad: afterRSS[srv.Name]})
	}
	for _, smps := range samples {
		for _, smp := range smps {
			rep.Precise = rep.Precise && smp.Precise
		}
	}
	return rep
}

func newRow(p Proto, op Op, srv *Server, kes, bare []Sample) Row {
	r := Row{Proto: p, Op: op, Server: srv.Name, Stdout: srv.Stdout, CPUTarget: cpuTarget(srv.Audit), KES: kes, Bare: bare}
	var ratios, p99Ratios []float64
	for i := range min(len(kes), len(bare)) {
		ratios = append(ratios, kes[i].MicrosPerReq()/bare[i].MicrosPerReq())
		p99Ratios = append(p99Ratios, float64(kes[i].P99)/float64(max(bare[i].P99, 1)))
		r.Suspect = r.Suspect || kes[i].Suspect() || bare[i].Suspect()
	}
	r.Ratio = median(ratios)
	r.P99Ratio = median(p99Ratios)
	r.KESP50 = medianDuration(kes, func(s Sample) time.Duration { return s.P50 })
	r.KESP99 = medianDuration(kes, func(s Sample) time.Duration { return s.P99 })
	r.BareP50 = medianDuration(bare, func(s Sample) time.Duration { return s.P50 })
	r.BareP99 = medianDuration(bare, func(s Sample) time.Duration { return s.P99 })
	r.KESMicros = median(collect(kes, Sample.MicrosPerReq))
	r.BareMicros = median(collect(bare, Sample.MicrosPerReq))
	r.KESReqPerSec = median(collect(kes, Sample.ReqPerSec))
	r.BareReqPerSec = median(collect(bare, Sample.ReqPerSec))
	return r
}

func collect(s []Sample, f func(Sample) float64) []float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	return v
}

func medianDuration(s []Sample, f func(Sample) time.Duration) time.Duration {
	return time.Duration(median(collect(s, func(s Sample) float64 { return float64(f(s)) })))
}

// median returns the median of v, the mean of the middle two for an even
// count, and 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) error {
	source := "/proc/PID/task/*/schedstat"
	if !r.Precise {
		source = "/proc/PID/stat (10 ms ticks)"
	}
	fmt.Fprintf(w, "kesload: %d requests per run, %d clients, %d rounds (medians); server CPU from %s\n",
		r.Requests, r.Clients, r.Rounds, source)
	fmt.Fprintln(w, "only ratios within this run are meaningful")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "protocol\top\tkes audit\tkes µs/req\tbare µs/req\tratio\ttarget\t\tkes req/s\tbare req/s\t")
	for _, row := range r.Rows {
		target, verdict := "none", "-"
		if row.CPUTarget > 0 {
			target, verdict = fmt.Sprintf("≤%.2f", row.CPUTarget), "ok"
			if !row.OK() {
				verdict = "MISS"
			}
		}
		if row.Suspect {
			verdict += " (cpu readings disagree)"
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%.1f\t%.1f\t%.2f\t%s\t%s\t%.0f\t%.0f\t\n",
			row.Proto, row.Op, row.Stdout, row.KESMicros, row.BareMicros, row.Ratio,
			target, verdict, row.KESReqPerSec, row.BareReqPerSec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.printLatency(w); err != nil {
		return err
	}
	r.printHSM(w)
	fmt.Fprintln(w)
	for _, m := range r.Memory {
		verdict := ""
		if m.Server != "bare" {
			verdict = fmt.Sprintf("  (target idle < %d MiB)", idleRSSTarget>>20)
		}
		fmt.Fprintf(w, "%-8s VmRSS idle %5.1f MiB, after load %5.1f MiB%s\n",
			m.Server, mib(m.Idle), mib(m.AfterLoad), verdict)
	}
	return nil
}

// printLatency writes the latency table: per protocol, operation and
// server the client-observed p50 and p99 (medians of the rounds) and, for
// a kes server, the median of the rounds' ratios of its p99 to the bare
// server's, with issue 12's target.
func (r *Report) printLatency(w io.Writer) error {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "latency seen by the clients, every request of the measured runs (medians of the rounds)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "protocol\top\tserver\tp50 ms\tp99 ms\tp99/bare\ttarget\t\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	for i, row := range r.Rows {
		verdict := "ok"
		if !row.LatencyOK() {
			verdict = "MISS"
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%s\t%.2f\t≤%.2f\t%s\t\n",
			row.Proto, row.Op, row.Server, ms(row.KESP50), ms(row.KESP99), row.P99Ratio, p99Target, verdict)
		// The bare server's line follows the last kes server of its
		// protocol and operation.
		if i+1 == len(r.Rows) || r.Rows[i+1].Proto != row.Proto || r.Rows[i+1].Op != row.Op {
			fmt.Fprintf(tw, "%v\t%v\tbare\t%s\t%s\t\t\t\t\n", row.Proto, row.Op, ms(row.BareP50), ms(row.BareP99))
		}
	}
	return tw.Flush()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// printHSM prints, for a run with the kes-hsm server, the median over the
// rounds of its CPU per request divided by that of the kes server.
func (r *Report) printHSM(w io.Writer) {
	rows := make(map[[2]int]Row)
	for _, row := range r.Rows {
		if row.Server == "kes" {
			rows[[2]int{int(row.Proto), int(row.Op)}] = row
		}
	}
	for _, row := range r.Rows {
		plain, ok := rows[[2]int{int(row.Proto), int(row.Op)}]
		if row.Server != "kes-hsm" || !ok {
			continue
		}
		var ratios []float64
		for i := range min(len(row.KES), len(plain.KES)) {
			ratios = append(ratios, row.KES[i].MicrosPerReq()/plain.KES[i].MicrosPerReq())
		}
		fmt.Fprintf(w, "%v %v: kes-hsm / kes CPU per request %.3f\n", row.Proto, row.Op, median(ratios))
	}
}
