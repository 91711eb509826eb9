package log_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/log"
)

// sinkPath is the path of the events of sinkEvent before "w<w>-<seq>".
const sinkPath = "/v1/key/generate/"

// sinkEvent returns the audit event number seq of writer w: its path names
// both, so that a reader can check that nothing is lost or reordered
// (log.CheckSequences with sinkPath).
func sinkEvent(w, seq int) log.AuditEvent {
	return log.AuditEvent{
		Method: "POST", Path: fmt.Sprintf("%sw%d-%d", sinkPath, w, seq),
		IP: netip.MustParseAddr("10.0.0.5"), Identity: testIdentity, Status: 200, Duration: 427 * time.Microsecond,
	}
}

// streamEvent is the JSON line of an audit event, as the sinks write it.
type streamEvent struct {
	Time    time.Time `json:"time"`
	Request struct {
		IP       string `json:"ip"`
		Path     string `json:"path"`
		Identity string `json:"identity"`
	} `json:"request"`
	Response struct {
		Code int   `json:"code"`
		Time int64 `json:"time"`
	} `json:"response"`
}

// fileAudit returns an audit log, without console, that writes to a new
// file sink of c.
func fileAudit(t testing.TB, c log.FileConfig) *log.AuditLog {
	t.Helper()
	sink, err := log.NewFileSink(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return log.NewAuditLog(nil, nil, nil, sink)
}

// syslogAudit returns an audit log, without console, that sends to a new
// syslog sink of c, and the sink.
func syslogAudit(t testing.TB, c log.SyslogConfig) (*log.AuditLog, *log.Sink) {
	t.Helper()
	sink, err := log.NewSyslogSink(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return log.NewAuditLog(nil, nil, nil, sink), sink
}

// logConcurrently logs perWriter events from each of writers goroutines
// (sinkEvent(w, seq+offset)) and fails t unless every Log call has
// returned within limit: a sink must never make the API wait for a syslog
// server, nor for long for a file.
func logConcurrently(t *testing.T, a *log.AuditLog, writers, perWriter, offset int, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.RunWriters(writers, perWriter, func(w, seq int) { a.Log(sinkEvent(w, offset+seq)) })
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("logging %d events took longer than %v: the sink blocks the API", writers*perWriter, limit)
		<-done
	}
}

// benchmarkLog logs the same event to a from 16 goroutines per CPU, b.N
// times in all.
func benchmarkLog(b *testing.B, a *log.AuditLog) {
	ev := sinkEvent(0, 0)
	ev.Time = time.Now()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Log(ev)
		}
	})
}

// listBackups returns the backups of the audit file path, oldest first.
func listBackups(t *testing.T, path string) []string {
	t.Helper()
	b, err := log.Backups(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkNewSinkErrors checks that newSink (log.NewFileSink or
// log.NewSyslogSink) fails for every config of cases, with an error that
// starts with prefix.
func checkNewSinkErrors[C any](t *testing.T, newSink func(C, *slog.Logger) (*log.Sink, error), prefix string, cases map[string]C) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			sink, err := newSink(c, nil)
			if err == nil {
				sink.Close(t.Context())
				t.Fatal("the sink was created")
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q lacks the prefix %q", err, prefix)
			}
		})
	}
}
