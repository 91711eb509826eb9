package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/keystore/mem"
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
			var before, after syscall.Rusage
			b.SetParallelism(16) // 32 goroutines on 2 cores, like 32 clients
			b.ResetTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve()
				}
			})
			if err := audit.Shutdown(context.Background()); err != nil { // its writes count
				b.Fatal(err)
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			b.StopTimer()
			cpu := time.Duration(syscall.TimevalToNsec(after.Utime) - syscall.TimevalToNsec(before.Utime) +
				syscall.TimevalToNsec(after.Stime) - syscall.TimevalToNsec(before.Stime))
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

// decryptServer returns a func that serves one decrypt request in-process
// with a server that audits to audit.
func decryptServer(b *testing.B, audit *log.AuditLog, m *metrics.Metrics) func() {
	apiKey, _ := kes.GenerateAPIKey(nil)
	cert, _ := kes.GenerateCertificate(apiKey, nil)
	keys := cache.New(&mem.Store{}, func(_ string, v []byte) (crypto.Key, error) { return crypto.ParseKey(v) }, cache.Config{})
	b.Cleanup(func() { keys.Close() })
	authorizer, _ := auth.New(apiKey.Identity(), nil, time.Now())
	srv, err := New(&Config{
		Keys: keys, Auth: authorizer,
		ErrorLog: log.NewErrorLog(io.Discard, slog.LevelError, m.ErrorEvent), AuditLog: audit,
		Metrics: m,
	})
	if err != nil {
		b.Fatal(err)
	}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	client, server := net.Pipe()
	b.Cleanup(func() { client.Close(); server.Close() })
	ctx := ConnContext(context.Background(), server)
	send := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
		req.TLS = state
		req.ProtoMajor = 2
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if rec := send("PUT", "/v1/key/create/bench", ""); rec.Code != 200 {
		b.Fatal(rec.Body.String())
	}
	ctxB64 := base64.StdEncoding.EncodeToString([]byte(`{"MinIO object":"bucket/prefix/object.bin"}`))
	rec := send("POST", "/v1/key/generate/bench", `{"context":"`+ctxB64+`"}`)
	var dek struct{ Ciphertext string }
	if err := json.Unmarshal(rec.Body.Bytes(), &dek); err != nil {
		b.Fatal(err)
	}
	decBody := `{"ciphertext":"` + dek.Ciphertext + `","context":"` + ctxB64 + `"}`
	return func() {
		if rec := send("POST", "/v1/key/decrypt/bench", decBody); rec.Code != 200 {
			b.Fatal(rec.Body.String())
		}
	}
}
