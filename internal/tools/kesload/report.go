package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// idleRSSTarget is issue 2's bound on the idle RSS of the kes server.
const idleRSSTarget = 25 << 20

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
	KESReqPerSec  float64
	BareReqPerSec float64
	Suspect       bool // some round's CPU readings disagree (Sample.Suspect)
	KES, Bare     []Sample
}

// OK reports whether the ratio meets the protocol's target.
func (r Row) OK() bool { return r.Ratio <= r.Proto.Target() }

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
	r := Row{Proto: p, Op: op, Server: srv.Name, Stdout: srv.Stdout, KES: kes, Bare: bare}
	var ratios []float64
	for i := range min(len(kes), len(bare)) {
		ratios = append(ratios, kes[i].MicrosPerReq()/bare[i].MicrosPerReq())
		r.Suspect = r.Suspect || kes[i].Suspect() || bare[i].Suspect()
	}
	r.Ratio = median(ratios)
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
		verdict := "ok"
		if !row.OK() {
			verdict = "MISS"
		}
		if row.Suspect {
			verdict += " (cpu readings disagree)"
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%.1f\t%.1f\t%.2f\t≤%.2f\t%s\t%.0f\t%.0f\t\n",
			row.Proto, row.Op, row.Stdout, row.KESMicros, row.BareMicros, row.Ratio,
			row.Proto.Target(), verdict, row.KESReqPerSec, row.BareReqPerSec)
	}
	if err := tw.Flush(); err != nil {
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
