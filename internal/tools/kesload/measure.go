package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// Sample is the result of one run: n requests against one server.
type Sample struct {
	Requests int           // requests sent
	OK       int           // requests answered 200 with the expected body
	CPU      time.Duration // server CPU time (schedstat, or stat if Precise is false)
	StatCPU  time.Duration // server CPU time from /proc/PID/stat (10 ms ticks)
	Precise  bool          // CPU is from schedstat
	Wall     time.Duration // client-observed duration of the run
	// P50 and P99 are percentiles of the client-observed latency of every
	// request of the run (nearest rank): from just before the request was
	// sent to the end of its reply's body.
	P50, P99 time.Duration
}

// MicrosPerReq returns the server CPU time per request in µs.
func (s Sample) MicrosPerReq() float64 {
	return float64(s.CPU.Nanoseconds()) / 1e3 / float64(max(s.Requests, 1))
}

// ReqPerSec returns the client-observed throughput.
func (s Sample) ReqPerSec() float64 {
	return float64(s.Requests) / max(s.Wall.Seconds(), 1e-9)
}

// Suspect reports whether the two CPU readings disagree by more than three
// ticks and 10 %, which happens if server threads exit during the run.
func (s Sample) Suspect() bool {
	d := (s.CPU - s.StatCPU).Abs()
	return s.Precise && d > 3*clockTick && float64(d) > 0.1*float64(s.StatCPU)
}

// Warmup sends Options.Warmup requests per client to every server, for
// every protocol and operation, and checks that each server holds the
// expected connections: one per client on HTTP/1.1, one on HTTP/2.
func (s *Session) Warmup(ctx context.Context) error {
	for _, srv := range s.Servers {
		for p, c := range srv.clients {
			for op := range numOps {
				t := &srv.targets[op]
				// One request first, so that HTTP/2 clients find the
				// connection instead of racing to dial.
				if err := c.do(ctx, c.workers[0], t); err != nil {
					return fmt.Errorf("%s %v %v warm-up: %w", srv.Name, Proto(p), op, err)
				}
				if err := c.each(ctx, t, s.opts.Warmup); err != nil {
					return fmt.Errorf("%s %v %v warm-up: %w", srv.Name, Proto(p), op, err)
				}
			}
			if n := c.live.Load(); n != c.wantConns() {
				return fmt.Errorf("%s %v: %d connections after warm-up, want %d", srv.Name, Proto(p), n, c.wantConns())
			}
		}
	}
	return nil
}

// Measure sends n requests of op over p to srv from all clients and reads
// the server's CPU time before and after, and the latency of every
// request (into slots allocated before the run, see loadClient.run). Call
// Warmup first; calls must not overlap. Every request must be answered 200
// with the expected body and no connection may be opened during the run
// (a run in which the client's Transport redialed on its own is run
// again, see measure).
func (s *Session) Measure(ctx context.Context, srv *Server, p Proto, op Op, n int) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RunTimeout)
	defer cancel()
	c, t := srv.clients[p], &srv.targets[op]
	for attempt := 1; ; attempt++ {
		smp, redialed, err := s.measure(ctx, srv, c, t, p, op, n)
		if !redialed || attempt == maxAttempts {
			return smp, err
		}
	}
}

// maxAttempts bounds the runs of one Measure call that are discarded
// because the client's Transport redialed.
const maxAttempts = 3

// measure is one run of Measure. A run during which the client opened a
// connection is an error, except when every connection closed during the
// run was closed by the client's http.Transport on its own (no read or
// write on it had failed, no answer announced the end of the connection):
// then the run is discarded (redialed is true, with the error), because
// its server CPU includes a TLS handshake, and Measure runs again, at most
// maxAttempts times in all. The Transport does drop a healthy HTTP/1.1
// connection when its writing goroutine has not reported a request as
// written within 50 ms of reading the response (persistConn.wroteRequest,
// net/http's maxWriteWaitBeforeConnReuse), which happens under heavy load;
// that says nothing about the server.
func (s *Session) measure(ctx context.Context, srv *Server, c *loadClient, t *target, p Proto, op Op, n int) (smp Sample, redialed bool, err error) {
	// One request per client revives connections the server closed as
	// idle, outside the measured window.
	if err := c.each(ctx, t, 1); err != nil {
		return Sample{}, false, fmt.Errorf("%s %v %v: %w", srv.Name, p, op, err)
	}
	if got := c.live.Load(); got != c.wantConns() {
		return Sample{}, false, fmt.Errorf("%s %v: %d connections, want %d", srv.Name, p, got, c.wantConns())
	}
	dials, dropped, ended, announced := c.dials.Load(), c.dropped.Load(), c.ended.Load(), c.announced.Load()
	before, err := readCPU(srv.Pid())
	if err != nil {
		return Sample{}, false, err
	}
	if cap(s.lat) < n {
		s.lat = make([]time.Duration, n)
	}
	lat := s.lat[:n]
	start := time.Now()
	ok, err := c.load(ctx, t, n, lat)
	wall := time.Since(start)
	if err != nil {
		return Sample{}, false, fmt.Errorf("%s %v %v: %d of %d requests answered: %w", srv.Name, p, op, ok, n, err)
	}
	after, err := readCPU(srv.Pid())
	if err != nil {
		return Sample{}, false, err
	}
	if got := c.dials.Load(); got != dials {
		redialed := c.ended.Load() == ended && c.announced.Load() == announced && c.dropped.Load()-dropped >= got-dials
		return Sample{}, redialed, fmt.Errorf("%s %v %v: %d new connections during the run (redialed by the client's Transport: %v)", srv.Name, p, op, got-dials, redialed)
	}
	slices.Sort(lat)
	return Sample{
		Requests: n,
		OK:       ok,
		CPU:      after.Best() - before.Best(),
		StatCPU:  after.Stat - before.Stat,
		Precise:  before.Sched > 0 && after.Sched > 0,
		Wall:     wall,
		P50:      percentile(lat, 0.50),
		P99:      percentile(lat, 0.99),
	}, false, nil
}

// percentile returns the q-quantile (0 < q <= 1) of the sorted values by
// nearest rank, the smallest value that at least q of them do not exceed;
// zero for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// cell names the samples of one server, protocol and operation.
type cell struct {
	server string
	proto  Proto
	op     Op
}

// Run starts the servers of o, warms up, measures every server, protocol
// and operation o.Rounds times and returns the report. The servers are
// stopped when it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	s, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	o = s.opts
	fmt.Fprintf(o.Log, "kesload: servers ready (%s), warming up\n", s.names())
	if err := s.Warmup(ctx); err != nil {
		return nil, err
	}
	stopPerf, err := startPerfs(s.Servers, o.Dir)
	if err != nil {
		return nil, err
	}
	defer stopPerf()
	samples := make(map[cell][]Sample)
	for round := range o.Rounds {
		for _, p := range o.Protos {
			for op := range numOps {
				for _, srv := range s.order(round) {
					smp, err := s.Measure(ctx, srv, p, op, o.Requests)
					if err != nil {
						return nil, err
					}
					fmt.Fprintf(o.Log, "round %d/%d %-8v %-8v %-8s %7.1f µs/req %8.0f req/s  p50 %v p99 %v\n",
						round+1, o.Rounds, p, op, srv.Name, smp.MicrosPerReq(), smp.ReqPerSec(),
						smp.P50.Round(time.Microsecond), smp.P99.Round(time.Microsecond))
					k := cell{srv.Name, p, op}
					samples[k] = append(samples[k], smp)
				}
			}
		}
	}
	stopPerf()
	after, err := s.loadRSS(ctx)
	if err != nil {
		return nil, err
	}
	return newReport(s, samples, after), nil
}

// order returns the servers in the order of a round: the order alternates
// so that neither kes nor bare always runs first.
func (s *Session) order(round int) []*Server {
	order := slices.Clone(s.Servers)
	if round%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// loadRSS waits for Options.Settle and returns each server's VmRSS.
func (s *Session) loadRSS(ctx context.Context) (map[string]int64, error) {
	if err := sleepCtx(ctx, s.opts.Settle); err != nil {
		return nil, err
	}
	rss := make(map[string]int64, len(s.Servers))
	for _, srv := range s.Servers {
		n, err := readRSS(srv.Pid())
		if err != nil {
			return nil, err
		}
		rss[srv.Name] = n
	}
	return rss, nil
}

func (s *Session) names() string {
	var names []string
	for _, srv := range s.Servers {
		names = append(names, fmt.Sprintf("%s pid %d", srv.Name, srv.Pid()))
	}
	return fmt.Sprint(names)
}
