package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds that [SoakReport.Check] holds the server to.
const (
	// goroutineSlack is how many goroutines above idle the server may keep
	// after the load (timers, a connection being torn down).
	goroutineSlack = 5
	// rssGrowth bounds the growth of the RSS: the median sample of the
	// second half of the run after the warm-up may exceed that of the first
	// half by this fraction of it, or by rssGrowthMin, whichever is larger.
	// Medians, so that one GC cycle's peak under a busy machine does not
	// decide; a leak grows them as it grows the peaks.
	rssGrowth    = 0.10
	rssGrowthMin = 4 << 20
	// settleTimeout bounds the wait for the server to return to idle.
	settleTimeout = 30 * time.Second
)

// Measure is one reading of the server process.
type Measure struct {
	RSS        int64 // VmRSS, bytes
	FDs        int   // open file descriptors (/proc/PID/fd)
	Goroutines int   // kes_system_num_threads of /v1/metrics
}

func (m Measure) String() string {
	return fmt.Sprintf("RSS %.1f MiB, %d fds, %d goroutines", float64(m.RSS)/(1<<20), m.FDs, m.Goroutines)
}

// SoakSample is a Measure taken during the load.
type SoakSample struct {
	At time.Duration // since the load started
	Measure
}

// SoakReport is the result of [Soak].
type SoakReport struct {
	Duration      time.Duration // asked for
	Warmup        time.Duration // first part of the load, not compared for RSS growth
	Elapsed       time.Duration // of the load
	Clients, Rate int
	Requests      [numSoakOps]int64 // answered, by operation, errors included
	Errors        int64
	ErrorMessages []string // the first few
	Idle, After   Measure  // before the load; after it, once settled
	Samples       []SoakSample
}

// Total returns the number of requests.
func (r *SoakReport) Total() int64 {
	var n int64
	for _, c := range r.Requests {
		n += c
	}
	return n
}

// Peak returns the largest readings during the load.
func (r *SoakReport) Peak() Measure {
	var p Measure
	for _, s := range r.Samples {
		p.RSS, p.FDs, p.Goroutines = max(p.RSS, s.RSS), max(p.FDs, s.FDs), max(p.Goroutines, s.Goroutines)
	}
	return p
}

// RSSHalves returns the median RSS sample of the first and of the second
// half of the load after the warm-up, in which the heap grows to its
// working size; zero for a half without samples.
func (r *SoakReport) RSSHalves() (first, second int64) {
	mid := r.Warmup + (r.Elapsed-r.Warmup)/2
	var a, b []int64
	for _, s := range r.Samples {
		switch {
		case s.At < r.Warmup:
		case s.At < mid:
			a = append(a, s.RSS)
		default:
			b = append(b, s.RSS)
		}
	}
	return medianInt(a), medianInt(b)
}

// medianInt returns the median of v (the upper one of an even count), or 0.
func medianInt(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// Check reports every way in which the run failed the soak: an error, no
// load, goroutines or file descriptors not back to idle, or RSS growing
// from the first half of the run to the second.
func (r *SoakReport) Check() error {
	var errs []error
	if r.Errors > 0 {
		errs = append(errs, fmt.Errorf("%d of %d requests failed, first: %s", r.Errors, r.Total(), strings.Join(r.ErrorMessages, "; ")))
	}
	for op, n := range r.Requests {
		if n == 0 && SoakOp(op) != SoakDelete {
			errs = append(errs, fmt.Errorf("no %v request was sent", SoakOp(op)))
		}
	}
	if r.After.Goroutines > r.Idle.Goroutines+goroutineSlack {
		errs = append(errs, fmt.Errorf("goroutines: %d after the load, %d idle (slack %d)", r.After.Goroutines, r.Idle.Goroutines, goroutineSlack))
	}
	if r.After.FDs > r.Idle.FDs {
		errs = append(errs, fmt.Errorf("file descriptors: %d after the load, %d idle", r.After.FDs, r.Idle.FDs))
	}
	first, second := r.RSSHalves()
	if first == 0 || second == 0 {
		errs = append(errs, fmt.Errorf("too few RSS samples (%d) to compare the halves of the run", len(r.Samples)))
	} else if limit := first + max(int64(float64(first)*rssGrowth), rssGrowthMin); second > limit {
		errs = append(errs, fmt.Errorf("RSS grew: median %.1f MiB in the second half, %.1f MiB in the first (limit %.1f MiB)",
			mib(second), mib(first), mib(limit)))
	}
	return errors.Join(errs...)
}

// Print writes the figures.
func (r *SoakReport) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %v of load (asked %v), %d clients (half HTTP/1.1, half HTTP/2), rate %d/s\n", r.Elapsed.Round(time.Second), r.Duration, r.Clients, r.Rate)
	fmt.Fprintf(&b, "requests: %d (%.0f/s):", r.Total(), float64(r.Total())/r.Elapsed.Seconds())
	for op, n := range r.Requests {
		fmt.Fprintf(&b, " %v %d", SoakOp(op), n)
	}
	fmt.Fprintf(&b, "; errors: %d\n", r.Errors)
	for _, m := range r.ErrorMessages {
		fmt.Fprintf(&b, "  error: %s\n", m)
	}
	peak := r.Peak()
	first, second := r.RSSHalves()
	fmt.Fprintf(&b, "goroutines: idle %d, peak %d, after %d\n", r.Idle.Goroutines, peak.Goroutines, r.After.Goroutines)
	fmt.Fprintf(&b, "fds:        idle %d, peak %d, after %d\n", r.Idle.FDs, peak.FDs, r.After.FDs)
	fmt.Fprintf(&b, "RSS MiB:    idle %.1f, peak %.1f, median 1st half %.1f, median 2nd half %.1f (after a %v warm-up), after %.1f (%d samples)\n",
		mib(r.Idle.RSS), mib(peak.RSS), mib(first), mib(second), r.Warmup.Round(100*time.Millisecond), mib(r.After.RSS), len(r.Samples))
	if len(r.Samples) > 0 {
		b.WriteString("RSS MiB over the run:")
		step := max(len(r.Samples)/20, 1)
		for i := 0; i < len(r.Samples); i += step {
			fmt.Fprintf(&b, " %v:%.1f", r.Samples[i].At.Round(time.Second), mib(r.Samples[i].RSS))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// measure reads the server's RSS and fds from /proc, then its goroutines
// from /v1/metrics, over a connection that is closed afterwards.
func (r *soakRun) measure(ctx context.Context) (Measure, error) {
	var m Measure
	var err error
	pid := r.srv.Pid()
	if m.RSS, err = readRSS(pid); err != nil {
		return m, err
	}
	if m.FDs, err = countFDs(pid); err != nil {
		return m, err
	}
	m.Goroutines, err = r.goroutines(ctx)
	return m, err
}

// countFDs returns the number of open file descriptors of process pid.
func countFDs(pid int) (int, error) {
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	return len(fds), err
}

// goroutines scrapes kes_system_num_threads (the server's goroutines).
func (r *soakRun) goroutines(ctx context.Context) (int, error) {
	t := &http.Transport{TLSClientConfig: r.creds.clientTLS(), DisableKeepAlives: true, Protocols: new(http.Protocols)}
	t.Protocols.SetHTTP1(true)
	defer t.CloseIdleConnections()
	reply, err := call(ctx, &http.Client{Transport: t, Timeout: 10 * time.Second}, http.MethodGet, r.base+"/v1/metrics", nil)
	if err != nil {
		return 0, err
	}
	return parseGauge(reply, "kes_system_num_threads")
}

// parseGauge returns the value of the unlabelled metric name in a
// Prometheus text exposition.
func parseGauge(text []byte, name string) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		return int(v), nil
	}
	return 0, fmt.Errorf("no metric %s in /v1/metrics", name)
}

// idle reads the server a few times while nothing else talks to it and
// returns the smallest fd and goroutine counts and the last RSS.
func (r *soakRun) idle(ctx context.Context) (Measure, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var idle Measure
	for i := range 5 {
		m, err := r.measure(ctx)
		if err != nil {
			return idle, err
		}
		if i == 0 {
			idle = m
		}
		idle.RSS, idle.FDs, idle.Goroutines = m.RSS, min(idle.FDs, m.FDs), min(idle.Goroutines, m.Goroutines)
		select {
		case <-ctx.Done():
			return idle, ctx.Err()
		case <-tick.C:
		}
	}
	return idle, nil
}

// settle waits until the server's goroutines and fds are back to idle (the
// bounds of Check) or settleTimeout passes, and returns the last reading.
func (r *soakRun) settle(ctx context.Context, idle Measure) (Measure, error) {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last Measure
	for {
		m, err := r.measure(ctx)
		if err != nil {
			if ctx.Err() != nil && last != (Measure{}) {
				return last, nil
			}
			return m, err
		}
		last = m
		if m.Goroutines <= idle.Goroutines+goroutineSlack && m.FDs <= idle.FDs {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return last, nil
		case <-tick.C:
		}
	}
}
