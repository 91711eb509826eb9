// Package rsyslogtest runs a real rsyslogd (Debian's package rsyslog) for
// the tests of the audit syslog sink: one process per test, listening on
// loopback UDP and TCP, a unix stream socket (imptcp) and a unix datagram
// socket (imuxsock), and writing every message it receives to a file the
// test reads. A missing rsyslogd fails the test with a hint (scripts/test.sh
// installs it with scripts/install-deb.sh rsyslogd rsyslog).
//
// This package is imported by tests only.
package rsyslogtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/peerbin"
)

// Rsyslogd is the rsyslogd binary: $OPENKES_RSYSLOGD_BIN, or the one on
// PATH, installed from the distribution's packages if missing.
var Rsyslogd = &peerbin.Peer{
	Name:   "rsyslogd",
	Env:    "OPENKES_RSYSLOGD_BIN",
	Script: "install-deb.sh",
	Args:   []string{"rsyslogd", "rsyslog"},
}

// Server is a running rsyslogd.
type Server struct {
	UDP, TCP       string // loopback host:port
	Unix, Unixgram string // socket paths

	t    testing.TB
	bin  string
	dir  string
	out  string // where rsyslogd writes what it receives
	conf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{} // closed when cmd has ended
	probes int           // probe messages sent, for unique probe IDs
}

// probeApp is the APP-NAME of the messages Start sends to see that
// rsyslogd listens; Messages leaves them out.
const probeApp = "rsyslogtest-probe"

// Start starts an rsyslogd owned by t; the test's cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Rsyslogd.Bin(t), dir: t.TempDir()}
	s.out = filepath.Join(s.dir, "messages")
	s.Unix = filepath.Join(s.dir, "stream.sock")
	s.Unixgram = filepath.Join(s.dir, "dgram.sock")
	udp, err := freeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	s.UDP = net.JoinHostPort("127.0.0.1", strconv.Itoa(udp))
	s.start(0)
	t.Cleanup(func() { s.Kill() })
	return s
}

// config returns rsyslogd's configuration with the TCP port tcpPort (0:
// any, written to the port file).
func (s *Server) config(tcpPort int) string {
	_, udpPort, _ := net.SplitHostPort(s.UDP)
	q := strconv.Quote
	return fmt.Sprintf(`global(workDirectory=%s maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
module(load="imptcp")
module(load="imuxsock" SysSock.Use="off")
template(name="fields" type="string" string="%%app-name%% %%procid%% %%msgid%% %%syslogfacility-text%% %%syslogseverity-text%% %%inputname%% %%hostname%% %%timereported:::date-rfc3339%% %%msg%%\n")
input(type="imudp" address="127.0.0.1" port=%s rcvbufSize="8m")
input(type="imtcp" address="127.0.0.1" port="%d" listenPortFileName=%s)
input(type="imptcp" path=%s unlink="on")
input(type="imuxsock" socket=%s useSpecialParser="off" parseHostname="on" ignoreTimestamp="off" ratelimit.interval="0" unlink="on")
action(type="omfile" file=%s template="fields")
`, q(s.dir), q(udpPort), tcpPort, q(filepath.Join(s.dir, "tcpport")), q(s.Unix), q(s.Unixgram), q(s.out))
}

// start starts rsyslogd and waits until it listens on every input.
func (s *Server) start(tcpPort int) {
	t := s.t
	t.Helper()
	s.conf = filepath.Join(s.dir, "rsyslog.conf")
	if err := os.WriteFile(s.conf, []byte(s.config(tcpPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	portFile := filepath.Join(s.dir, "tcpport")
	os.Remove(portFile)
	cmd := exec.Command(s.bin, "-n", "-f", s.conf, "-i", filepath.Join(s.dir, "rsyslogd.pid"))
	stderr := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.stderr, s.done = cmd, stderr, done
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	ready := func() bool {
		if tcpPort == 0 { // the port rsyslogd chose
			b, err := os.ReadFile(portFile)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				return false
			}
			s.TCP = net.JoinHostPort("127.0.0.1", string(bytes.TrimSpace(b)))
		}
		for _, p := range []string{s.Unix, s.Unixgram} {
			if _, err := os.Stat(p); err != nil {
				return false
			}
		}
		return true
	}
	for ; ; s.probes++ {
		select {
		case <-done:
			t.Fatalf("rsyslogd ended at start: %s", stderr)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			t.Fatalf("rsyslogd does not listen after 30 s: %s", stderr)
		}
		if ready() && s.probe(s.probes) {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling another process's files: no event to wait for
	}
}

// probe sends a probe message over UDP and every socket and reports
// whether the first one has arrived, so that every input listens.
func (s *Server) probe(n int) bool {
	msg := fmt.Sprintf("<134>1 - - %s - probe%d - probe", probeApp, n)
	for _, nw := range [][2]string{{"udp", s.UDP}, {"unixgram", s.Unixgram}} {
		if c, err := net.Dial(nw[0], nw[1]); err == nil {
			c.Write([]byte(msg))
			c.Close()
		}
	}
	for _, nw := range [][2]string{{"tcp", s.TCP}, {"unix", s.Unix}} {
		if c, err := net.Dial(nw[0], nw[1]); err == nil {
			fmt.Fprintf(c, "%d %s", len(msg), msg)
			c.Close()
		}
	}
	b, _ := os.ReadFile(s.out)
	for _, in := range []string{"imudp", "imtcp", "imptcp", "imuxsock"} {
		if !bytes.Contains(b, []byte(" probe"+strconv.Itoa(n)+" local0 info "+in+" ")) {
			return false
		}
	}
	return true
}

// Message is a message rsyslogd received, as its template wrote it.
type Message struct {
	AppName, ProcID, MsgID string
	Facility, Severity     string // names: local0, info
	Input                  string // imudp, imtcp, imptcp or imuxsock
	Hostname               string
	Time                   string // the TIMESTAMP, as RFC 3339
	Msg                    string
}

// Messages returns the messages received so far, probes left out. A line
// with too few fields, which a killed rsyslogd may leave behind (torn,
// and continued by its successor), is left out too.
func (s *Server) Messages() ([]Message, error) {
	f, err := os.Open(s.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var msgs []Message
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 9)
		if len(fields) != 9 || fields[0] == probeApp {
			continue
		}
		msgs = append(msgs, Message{fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], fields[8]})
	}
	return msgs, sc.Err()
}

// WaitMessages waits up to 60 s until at least n messages other than the
// probes have arrived, and returns them.
func (s *Server) WaitMessages(n int) []Message {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs, err := s.Messages()
		if err != nil {
			s.t.Fatal(err)
		}
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("rsyslogd received %d messages in 60 s, want %d", len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's file: no event to wait for
	}
}

// Signal sends sig to rsyslogd (SIGSTOP and SIGCONT to stall and resume
// it).
func (s *Server) Signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// Kill kills rsyslogd (SIGKILL: no goodbye) and waits for it to end.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts rsyslogd again, after Kill, on the same addresses and
// sockets, appending to the same file.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	_, port, _ := net.SplitHostPort(s.TCP)
	p, err := strconv.Atoi(port)
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(p)
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
