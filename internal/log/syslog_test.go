package log_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/rsyslogtest"
)

// pinnedEvent is the event whose syslog message the tests pin.
var pinnedEvent = log.AuditEvent{
	Time:   time.Date(2026, 12, 1, 21, 50, 41, 123456789, time.FixedZone("CET", 3600)),
	Method: "PUT", Path: "/v1/key/create/my-key", IP: netip.MustParseAddr("10.0.0.5"),
	Identity: testIdentity, Status: 200, Duration: 427 * time.Microsecond,
}

// pinnedMessage is the RFC 5424 message of pinnedEvent with facility
// local0, host kes-1 and the default app name.
func pinnedMessage() string {
	return `<134>1 2026-12-01T20:50:41.123456Z kes-1 kes ` + strconv.Itoa(os.Getpid()) + ` audit - ` +
		`{"time":"2026-12-01T21:50:41.123456789+01:00","request":{"ip":"10.0.0.5","path":"/v1/key/create/my-key","identity":"` +
		testIdentity.String() + `"},"response":{"code":200,"time":427000}}`
}

// TestSyslogMessageUDP pins the exact datagram of an event.
func TestSyslogMessageUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a, _ := syslogAudit(t, log.SyslogConfig{Network: "udp", Address: pc.LocalAddr().String(), Hostname: "kes-1"})
	a.Log(pinnedEvent)
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), pinnedMessage(); got != want {
		t.Fatalf("datagram\n%s\nwant\n%s", got, want)
	}
}

// TestSyslogMessageTCP pins the octet-counted frames of two events on a
// stream connection (RFC 6587 §3.4.1), and the facility and app name
// settings.
func TestSyslogMessageTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	a, _ := syslogAudit(t, log.SyslogConfig{
		Network: "tcp", Address: ln.Addr().String(), Hostname: "kes-1", Facility: "auth", AppName: "kes-audit",
	})
	a.Log(pinnedEvent)
	a.Log(pinnedEvent)
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	msg := strings.Replace(pinnedMessage(), "<134>1", "<38>1", 1) // auth (4) * 8 + info (6)
	msg = strings.Replace(msg, " kes ", " kes-audit ", 1)
	frame := strconv.Itoa(len(msg)) + " " + msg
	if s := <-got; s != frame+frame {
		t.Fatalf("stream\n%s\nwant twice\n%s", s, frame)
	}
}

// TestNewSyslogSinkErrors checks that a syslog sink refuses a config it
// cannot use at once.
func TestNewSyslogSinkErrors(t *testing.T) {
	checkNewSinkErrors(t, log.NewSyslogSink, "log: audit syslog: ", map[string]log.SyslogConfig{
		"no network":       {Address: "127.0.0.1:514"},
		"unknown network":  {Network: "tcp6x", Address: "127.0.0.1:514"},
		"no address":       {Network: "udp"},
		"unknown facility": {Network: "udp", Address: "127.0.0.1:514", Facility: "local8"},
		"app name space":   {Network: "udp", Address: "127.0.0.1:514", AppName: "k e s"},
		"app name long":    {Network: "udp", Address: "127.0.0.1:514", AppName: strings.Repeat("k", 49)},
		"hostname space":   {Network: "udp", Address: "127.0.0.1:514", Hostname: "a b"},
	})
}

// TestSyslogRsyslog sends events over each network to a real rsyslogd and
// checks that it receives every one, with the header fields, in each
// writer's order.
func TestSyslogRsyslog(t *testing.T) {
	srv := rsyslogtest.Start(t)
	const writers, perWriter = 4, 250
	networks := []struct{ network, address, input string }{
		{"udp", srv.UDP, "imudp"},
		{"tcp", srv.TCP, "imtcp"},
		{"unix", srv.Unix, "imptcp"},
		{"unixgram", srv.Unixgram, "imuxsock"},
	}
	total := 0
	for _, nw := range networks {
		a, _ := syslogAudit(t, log.SyslogConfig{Network: nw.network, Address: nw.address, Hostname: "kes-1"})
		logConcurrently(t, a, writers, perWriter, 0, 2*time.Minute)
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatalf("%s: %v", nw.network, err)
		}
		total += writers * perWriter
		srv.WaitMessages(total)
	}
	msgs := srv.WaitMessages(total)
	for _, nw := range networks {
		var paths []string
		for _, m := range msgs {
			if m.Input != nw.input {
				continue
			}
			if m.AppName != "kes" || m.ProcID != strconv.Itoa(os.Getpid()) || m.MsgID != "audit" ||
				m.Facility != "local0" || m.Severity != "info" || m.Hostname != "kes-1" {
				t.Fatalf("%s: unexpected header %+v", nw.network, m)
			}
			var ev streamEvent
			if err := json.Unmarshal([]byte(m.Msg), &ev); err != nil {
				t.Fatalf("%s: message %q: %v", nw.network, m.Msg, err)
			}
			// The header's time is the event's, to the microsecond.
			if ts, err := time.Parse(time.RFC3339Nano, m.Time); err != nil || !ts.Equal(ev.Time.Truncate(time.Microsecond)) {
				t.Fatalf("%s: header time %s, event time %s", nw.network, m.Time, ev.Time)
			}
			paths = append(paths, ev.Request.Path)
		}
		t.Run(nw.network, func(t *testing.T) { log.CheckSequences(t, paths, sinkPath, writers, perWriter) })
	}
}

// TestSyslogStalledServer stops rsyslogd (SIGSTOP) under load: logging
// goes on, the events that do not fit into the queue are dropped and
// counted, and once rsyslogd continues, events arrive again.
func TestSyslogStalledServer(t *testing.T) {
	for _, tc := range []struct {
		network   string
		perWriter int
	}{
		// 8 x 6,000 events of ~300 bytes: more than loopback TCP's
		// socket buffers (at most 4 MiB to send, 6 MiB to receive) and
		// the queue hold.
		{"tcp", 6000},
		// A unix datagram socket queues 512 datagrams (max_dgram_qlen).
		{"unixgram", 1000},
	} {
		t.Run(tc.network, func(t *testing.T) {
			srv := rsyslogtest.Start(t)
			addr := map[string]string{"tcp": srv.TCP, "unixgram": srv.Unixgram}[tc.network]
			a, sink := syslogAudit(t, log.SyslogConfig{Network: tc.network, Address: addr})
			log.SetQueueLimit(sink, 256<<10) // not 4 MiB: fewer events fill it
			defer a.Shutdown(t.Context())
			srv.Signal(syscall.SIGSTOP)
			// A stalled sink would block forever: any bound tells.
			logConcurrently(t, a, 8, tc.perWriter, 0, 2*time.Minute)
			if a.SinkDropped() == 0 {
				t.Fatal("no event dropped while rsyslogd was stopped")
			}
			srv.Signal(syscall.SIGCONT)
			waitDelivered(t, srv, a)
		})
	}
}

// TestSyslogKilledServer kills rsyslogd: logging goes on, and the sink
// reconnects to a new rsyslogd on the same address.
func TestSyslogKilledServer(t *testing.T) {
	for _, network := range []string{"tcp", "unix", "udp"} {
		t.Run(network, func(t *testing.T) {
			srv := rsyslogtest.Start(t)
			addr := map[string]string{"tcp": srv.TCP, "unix": srv.Unix, "udp": srv.UDP}[network]
			a, _ := syslogAudit(t, log.SyslogConfig{Network: network, Address: addr})
			defer a.Shutdown(t.Context())
			logConcurrently(t, a, 2, 100, 0, 2*time.Minute)
			srv.WaitMessages(200)
			srv.Kill()
			logConcurrently(t, a, 4, 500, 100, 2*time.Minute)
			srv.Restart()
			waitDelivered(t, srv, a)
		})
	}
}

// waitDelivered logs a marker event every 50 ms until rsyslogd has
// received one: the sink delivers again.
func waitDelivered(t *testing.T, srv *rsyslogtest.Server, a *log.AuditLog) {
	t.Helper()
	marker := sinkEvent(0, 0)
	marker.Path = "/v1/key/generate/marker"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		a.Log(marker)
		msgs, err := srv.Messages()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if strings.Contains(m.Msg, marker.Path) {
				return
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("no event delivered 60 s after rsyslogd came back")
		}
	}
}

// TestSyslogShutdownDeadline checks that Shutdown with the syslog server
// gone returns at its deadline and says how many events were lost.
func TestSyslogShutdownDeadline(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "gone.sock")
	a, _ := syslogAudit(t, log.SyslogConfig{Network: "unix", Address: sock})
	for seq := range 10 {
		a.Log(sinkEvent(0, seq))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "10 events not delivered at shutdown") {
		t.Fatalf("Shutdown = %v, want 10 events not delivered", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if n := a.SinkDropped(); n != 10 {
		t.Fatalf("SinkDropped = %d, want 10", n)
	}
}

// BenchmarkAuditSinkSyslogUDP measures logging to a syslog sink over UDP
// (the console off) from concurrent goroutines; a goroutine of the
// benchmark reads and discards the datagrams.
func BenchmarkAuditSinkSyslogUDP(b *testing.B) {
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
	defer wg.Wait()
	defer pc.Close()
	a, _ := syslogAudit(b, log.SyslogConfig{Network: "udp", Address: pc.LocalAddr().String()})
	benchmarkLog(b, a)
	a.Shutdown(b.Context())
	b.ReportMetric(float64(a.SinkDropped())/float64(b.N), "dropped/op")
}
