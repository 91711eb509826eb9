package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/metrics"
)

// BenchmarkHandlerAudit measures the process CPU time (user and system,
// all goroutines: the sinks' writers too) per decrypt request handled
// in-process, by where the audit log goes: off, the console to
// /dev/null, a file sink, a syslog sink over UDP and over TCP. The syslog
// receivers (discarding) run in the benchmark's process, so their CPU
// counts too. Without TLS and HTTP
// the request costs less than on a server, so the ratios of the audit
// cases to "off" bound the server-level ratios from above. Run the cases
// interleaved (-count) on a busy machine.
func BenchmarkHandlerAudit(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(io.Discard, c); c.Close() })
		}
	})
	defer wg.Wait()
	defer pc.Close()
	defer ln.Close()

	for _, bc := range []struct {
		name  string
		audit func(b *testing.B, onEvent func()) *log.AuditLog
	}{
		{"off", func(b *testing.B, onEvent func()) *log.AuditLog {
			return log.NewAuditLog(devNull, log.LevelOff, onEvent)
		}},
		{"stdout-devnull", func(b *testing.B, onEvent func()) *log.AuditLog {
			return log.NewAuditLog(devNull, nil, onEvent)
		}},
		{"file", func(b *testing.B, onEvent func()) *log.AuditLog {
			sink, err := log.NewFileSink(log.FileConfig{Path: filepath.Join(b.TempDir(), "audit.log")}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return log.NewAuditLog(nil, nil, onEvent, sink)
		}},
		{"syslog-udp", func(b *testing.B, onEvent func()) *log.AuditLog {
			sink, err := log.NewSyslogSink(log.SyslogConfig{Network: "udp", Address: pc.LocalAddr().String()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return log.NewAuditLog(nil, nil, onEvent, sink)
		}},
		{"syslog-tcp", func(b *testing.B, onEvent func()) *log.AuditLog {
			sink, err := log.NewSyslogSink(log.SyslogConfig{Network: "tcp", Address: ln.Addr().String()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return log.NewAuditLog(nil, nil, onEvent, sink)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := metrics.New(time.Now())
			audit := bc.audit(b, m.AuditEvent)
			serve := decryptServer(b, audit, m)
			b.SetParallelism(16) // 32 goroutines on 2 cores, like 32 clients
			b.ResetTimer()
			before := processCPUTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve()
				}
			})
			if err := audit.Shutdown(context.Background()); err != nil { // its writes count
				b.Fatal(err)
			}
			cpu := processCPUTime(b) - before
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

// decryptServer returns a func that serves one decrypt request in-process
// with a server that audits to audit.
func decryptServer(b *testing.B, audit *log.AuditLog, m *metrics.Metrics) func() {
	apiKey, _ := kes.GenerateAPIKey(nil)
	srv := newBenchServer(b, apiKey.Identity(), nil, func(c *Config) {
		c.ErrorLog, c.AuditLog, c.Metrics = log.NewErrorLog(io.Discard, slog.LevelError, m.ErrorEvent), audit, m
	})
	conn := newBenchClient(b, apiKey)
	_, decBody := conn.benchKey(b, srv)
	return func() {
		if rec := conn.send(srv, "POST", "/v1/key/decrypt/bench", decBody); rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
}
