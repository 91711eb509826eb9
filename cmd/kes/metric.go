package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

func newMetricCmd(env *Env) *cobra.Command {
	var (
		conn connFlags
		rate time.Duration
	)
	cmd := &cobra.Command{
		Use:   "metric [--rate <duration>] [-k]",
		Short: "Print server metrics as they change",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return metric(cmd.Context(), env, &conn, rate, nil)
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.DurationVar(&rate, "rate", 5*time.Second, "scrape interval")
	return cmd
}

// metricJSON is one line of the non-terminal output of `kes metric`.
type metricJSON struct {
	RequestOK     uint64                   `json:"kes_http_request_success"`
	RequestErr    uint64                   `json:"kes_http_request_error"`
	RequestFail   uint64                   `json:"kes_http_request_failure"`
	RequestActive uint64                   `json:"kes_http_request_active"`
	AuditEvents   uint64                   `json:"kes_log_audit_events"`
	ErrorEvents   uint64                   `json:"kes_log_error_events"`
	Latency       map[time.Duration]uint64 `json:"kes_http_response_time"`
	UpTime        time.Duration            `json:"kes_system_up_time"`
	CPUs          int                      `json:"kes_system_num_cpu"`
	UsableCPUs    int                      `json:"kes_system_num_cpu_used"`
	Threads       int                      `json:"kes_system_num_threads"`
	HeapAlloc     uint64                   `json:"kes_system_mem_heap_used"`
	HeapObjects   uint64                   `json:"kes_system_mem_heap_objects"`
	StackAlloc    uint64                   `json:"kes_system_mem_stack_used"`
}

// metric scrapes the server's metrics now and then at every tick until
// ctx ends. ticks nil means every rate. In terminal mode it redraws a
// dashboard in place; otherwise it prints one JSON object per scrape.
func metric(ctx context.Context, env *Env, conn *connFlags, rate time.Duration, ticks <-chan time.Time) error {
	if rate <= 0 {
		return fmt.Errorf("invalid rate '%v': must be positive", rate)
	}
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	if ticks == nil {
		ticker := time.NewTicker(rate)
		defer ticker.Stop()
		ticks = ticker.C
	}
	p := &printer{w: env.Stdout, term: env.terminal(), color: env.terminal()}
	var prev *kes.Metrics
	var prevAt time.Time
	for {
		m, err := client.Metrics(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("failed to fetch metrics: %w", err)
		}
		now := time.Now()
		if p.term {
			p.dashboard(client.Endpoints()[0], rate, m, prev, now.Sub(prevAt))
		} else if err := p.json(metricJSON{
			m.RequestOK, m.RequestErr, m.RequestFail, m.RequestActive, m.AuditEvents, m.ErrorEvents,
			m.LatencyHistogram, m.UpTime, m.CPUs, m.UsableCPUs, m.Threads, m.HeapAlloc, m.HeapObjects, m.StackAlloc,
		}, false); err != nil {
			return err
		}
		prev, prevAt = m, now
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
	}
}

// dashboard redraws the terminal view of `kes metric`: the screen is
// cleared and the current values printed, with request rates computed
// against the previous scrape taken elapsed ago.
func (p *printer) dashboard(endpoint string, rate time.Duration, m, prev *kes.Metrics, elapsed time.Duration) {
	fmt.Fprint(p.w, "\x1b[H\x1b[2J")
	fmt.Fprintf(p.w, "%s  %s  (every %v, Ctrl-C to quit)\n\n", p.style(ansiBold, "KES metrics"), endpoint, rate)
	perSec := "-"
	if prev != nil && elapsed > 0 && m.RequestN() >= prev.RequestN() {
		perSec = fmt.Sprintf("%.1f/s", float64(m.RequestN()-prev.RequestN())/elapsed.Seconds())
	}
	p.label(12, "Requests", fmt.Sprintf("%s %d   %s %d   %s %d   active %d   rate %s",
		p.style(ansiGreen, "2xx"), m.RequestOK, p.style(ansiYellow, "4xx"), m.RequestErr,
		p.style(ansiRed, "5xx"), m.RequestFail, m.RequestActive, perSec))
	bounds := slices.Sorted(maps.Keys(m.LatencyHistogram))
	for i, b := range bounds {
		label := ""
		if i == 0 {
			label = "Latency"
		}
		share := 0.0
		if n := m.RequestN(); n > 0 {
			share = 100 * float64(m.LatencyHistogram[b]) / float64(n)
		}
		p.label(12, label, fmt.Sprintf("≤ %-8v %6.1f%%  %d", b, share, m.LatencyHistogram[b]))
	}
	p.label(12, "Logs", fmt.Sprintf("audit %d   error %d", m.AuditEvents, m.ErrorEvents))
	p.label(12, "Uptime", formatUptime(m.UpTime))
	p.label(12, "CPUs", fmt.Sprintf("%d of %d   threads %d", m.UsableCPUs, m.CPUs, m.Threads))
	p.label(12, "Memory", fmt.Sprintf("heap %s (%d objects)   stack %s", formatBytes(m.HeapAlloc), m.HeapObjects, formatBytes(m.StackAlloc)))
}
