package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

func newStatusCmd(env *Env) *cobra.Command {
	var (
		conn       connFlags
		out        outFlags
		short, api bool
	)
	cmd := &cobra.Command{
		Use:   "status [-k] [-s|--short] [--api] [--json] [--color]",
		Short: "Print the status of servers",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return status(cmd.Context(), env, &conn, &out, short, api)
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.BoolVarP(&short, "short", "s", false, "print only whether each server is up")
	f.BoolVar(&api, "api", false, "list the APIs of the server")
	out.registerJSON(f)
	out.registerColor(f)
	return cmd
}

// statusJSON is the --json form of a status: the SDK's fields with false
// and zero values omitted.
type statusJSON struct {
	Version             string `json:"version,omitempty"`
	OS                  string `json:"os,omitempty"`
	Arch                string `json:"arch,omitempty"`
	UpTime              int64  `json:"uptime,omitempty"`
	CPUs                int    `json:"num_cpu,omitempty"`
	UsableCPUs          int    `json:"num_cpu_used,omitempty"`
	HeapAlloc           uint64 `json:"mem_heap_used,omitempty"`
	StackAlloc          uint64 `json:"mem_stack_used,omitempty"`
	KeyStoreLatency     int64  `json:"keystore_latency,omitempty"`
	KeyStoreUnreachable bool   `json:"keystore_unreachable,omitempty"`
	KeyStoreUnavailable bool   `json:"keystore_unavailable,omitempty"`
}

// status prints the status of each configured server.
func status(ctx context.Context, env *Env, conn *connFlags, out *outFlags, short, api bool) error {
	p, err := newPrinter(env, out)
	if err != nil {
		return err
	}
	opts, err := conn.options(env)
	if err != nil {
		return err
	}
	for _, endpoint := range conn.endpoints(env) {
		client, err := kes.NewClient([]string{endpoint}, opts...)
		if err != nil {
			return err
		}
		err = statusOf(ctx, client, p, out.JSON, short, api)
		client.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func statusOf(ctx context.Context, client *kes.Client, p *printer, asJSON, short, api bool) error {
	host := client.Endpoints()[0]
	if u, err := url.Parse(host); err == nil {
		host = u.Host
	}
	start := time.Now()
	s, err := client.Status(ctx)
	latency := time.Since(start)
	if err != nil {
		if !asJSON {
			fmt.Fprintf(p.w, "%s %s\n", p.style(ansiRed, "●"), host)
		}
		return fmt.Errorf("failed to fetch status of '%s': %w", host, err)
	}
	var apis []kes.API
	if api {
		if apis, err = client.APIs(ctx); err != nil {
			return fmt.Errorf("failed to list APIs of '%s': %w", host, err)
		}
		slices.SortFunc(apis, func(a, b kes.API) int { return strings.Compare(a.Path, b.Path) })
	}
	if asJSON {
		if api {
			return p.json(apis, p.term && !short)
		}
		return p.json(statusJSON(*s), p.term && !short)
	}
	fmt.Fprintf(p.w, "%s %s\n", p.style(ansiGreen, "●"), p.style(ansiBold, host))
	if !short {
		const w = 12
		p.label(w, "  Version", s.Version)
		p.label(w, "  Uptime", formatUptime(time.Duration(s.UpTime)*time.Second))
		p.label(w, "  Latency", fmt.Sprintf("%dms", max(1, latency.Milliseconds())))
		p.label(w, "  OS", s.OS)
		p.label(w, "  CPUs", fmt.Sprintf("%d %s", s.UsableCPUs, s.Arch))
		p.label(w, "  Memory", "")
		p.label(w, "   · Heap", formatBytes(s.HeapAlloc))
		p.label(w, "   · Stack", formatBytes(s.StackAlloc))
	}
	if api {
		fmt.Fprintln(p.w)
		fmt.Fprintf(p.w, "%-8s%-34s%s\n", p.style(ansiBold, "Method"), p.style(ansiBold, "API"), p.style(ansiBold, "Timeout"))
		for _, a := range apis {
			timeout := "Inf"
			if a.Timeout > 0 {
				timeout = (time.Duration(a.Timeout) * time.Second).String()
			}
			fmt.Fprintf(p.w, "%-8s%-34s%s\n", a.Method, a.Path, timeout)
		}
	}
	return nil
}

// formatUptime formats d as "N days M hours", "N hours", "N minutes" or
// "N seconds".
func formatUptime(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d days %d hours", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return fmt.Sprintf("%d seconds", d/time.Second)
}

// formatBytes formats n in decimal units with one fraction digit: 5.2MB.
func formatBytes(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%dB", n)
	}
	v, unit := float64(n)/1000, 0
	for ; v >= 1000 && unit < 5; unit++ {
		v /= 1000
	}
	return fmt.Sprintf("%.1f%s", v, []string{"KB", "MB", "GB", "TB", "PB", "EB"}[unit])
}
