package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/openkes/kes"
)

// auditHeader is the header of the human audit log view (spec cli.md §8).
const auditHeader = "Time        Status    Identity                IP                 API                               Latency"

func newLogCmd(env *Env) *cobra.Command {
	var (
		conn          connFlags
		out           outFlags
		audit, errLog bool
	)
	cmd := &cobra.Command{
		Use:   "log [--audit | --error] [--json] [-k]",
		Short: "Print the audit or error log of a server as it happens",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if audit && errLog {
				return errors.New("cannot display audit and error logs at the same time")
			}
			p, err := newPrinter(env, &out)
			if err != nil {
				return err
			}
			if errLog {
				return logError(cmd.Context(), env, &conn, p, out.JSON)
			}
			return logAudit(cmd.Context(), env, &conn, p, out.JSON)
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.BoolVar(&audit, "audit", false, "print the audit log (default)")
	f.BoolVar(&errLog, "error", false, "print the error log")
	out.registerJSON(f)
	cmd.AddCommand(newLogTraceCmd(env))
	return cmd
}

// newLogTraceCmd returns `kes log trace`, the v0.17 form.
func newLogTraceCmd(env *Env) *cobra.Command {
	var (
		conn connFlags
		out  outFlags
		typ  string
		rate time.Duration
	)
	cmd := &cobra.Command{
		Use:   "trace [--type audit|error|metric] [--rate 3s] [--json]",
		Short: "Print the audit or error log or metrics (v0.17 form of 'kes log' and 'kes metric')",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newPrinter(env, &out)
			if err != nil {
				return err
			}
			switch typ {
			case "audit":
				return logAudit(cmd.Context(), env, &conn, p, out.JSON)
			case "error":
				return logError(cmd.Context(), env, &conn, p, out.JSON)
			case "metric":
				return metric(cmd.Context(), env, &conn, rate, nil)
			}
			return fmt.Errorf("invalid log type '%s'. Use 'audit', 'error' or 'metric'", typ)
		},
	}
	f := cmd.Flags()
	conn.register(f)
	f.StringVar(&typ, "type", "audit", "audit, error or metric")
	f.DurationVar(&rate, "rate", 3*time.Second, "scrape interval of --type metric")
	out.registerJSON(f)
	return cmd
}

// logAudit prints audit events until ctx ends or the stream fails.
func logAudit(ctx context.Context, env *Env, conn *connFlags, p *printer, asJSON bool) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	stream, err := client.AuditLog(ctx)
	if err != nil {
		return fmt.Errorf("failed to connect to audit log: %w", err)
	}
	defer stream.Close()
	if !asJSON {
		fmt.Fprintln(p.w, p.style(ansiBold, auditHeader))
	}
	for stream.Next() {
		e := stream.Event()
		if asJSON {
			err = p.json(e, false)
		} else {
			_, err = fmt.Fprintln(p.w, p.auditRow(&e))
		}
		if err != nil {
			return err
		}
	}
	return streamErr(ctx, stream.Err())
}

// logError prints error events until ctx ends or the stream fails.
func logError(ctx context.Context, env *Env, conn *connFlags, p *printer, asJSON bool) error {
	client, err := conn.client(env)
	if err != nil {
		return err
	}
	stream, err := client.ErrorLog(ctx)
	if err != nil {
		return fmt.Errorf("failed to connect to error log: %w", err)
	}
	defer stream.Close()
	for stream.Next() {
		e := stream.Event()
		if asJSON {
			err = p.json(e, false)
		} else {
			_, err = fmt.Fprintln(p.w, e.Message)
		}
		if err != nil {
			return err
		}
	}
	return streamErr(ctx, stream.Err())
}

// streamErr returns the error that ended a log stream: the context's if it
// was canceled (so the command exits silently), else err.
func streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		return errors.New("the server closed the log stream")
	}
	return fmt.Errorf("log stream failed: %w", err)
}

// auditRow formats an audit event as a row under auditHeader.
func (p *printer) auditRow(e *kes.AuditEvent) string {
	status := fmt.Sprintf("%d", e.Response.StatusCode)
	if e.Response.StatusCode == 200 {
		status = p.style(ansiGreen, status)
	} else {
		status = p.style(ansiRed, status)
	}
	identity := e.Request.Identity.String()
	if len(identity) > 20 {
		identity = identity[:20]
	}
	ip := e.Request.IP
	if ip == "" {
		ip = "<unknown>"
	}
	return fmt.Sprintf("%s    %s     %-20s    %-15s    %-30s    %s",
		e.Time.Local().Format("15:04:05"), status, identity, ip, e.Request.Path, roundLatency(e.Response.Time))
}

// roundLatency rounds d for display: ≥1s to 100ms, ≥10ms to 1ms, ≥1ms to
// 100µs, ≥10µs to 1µs.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}
