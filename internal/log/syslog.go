package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// SyslogConfig configures an audit syslog sink (config key
// log.audit_syslog): every audit event as one RFC 5424 message, severity
// informational, whose MSG is the event's JSON line, for example
//
//	<134>1 2026-12-01T20:50:41.123456Z kes-1 kes 4711 audit - {"time":"2026-12-01T20:50:41.123456789Z","request":{...},"response":{...}}
//
// Over tcp and unix (stream sockets) messages are framed by octet counting
// (RFC 6587 §3.4.1: "<length> <message>"); over udp and unixgram each is
// one datagram.
type SyslogConfig struct {
	// Network is "udp", "tcp", "unix" (a stream socket) or "unixgram".
	// Required.
	Network string

	// Address is "host:port" for udp and tcp, a socket path for unix and
	// unixgram. Required.
	Address string

	// Facility is a facility name of RFC 5424 ("kern", "user", …,
	// "local7", see [ParseFacility]). Empty means "local0".
	Facility string

	// AppName is the APP-NAME of the messages: 1 to 48 printable ASCII
	// characters. Empty means "kes".
	AppName string

	// Hostname is the HOSTNAME of the messages. Empty means the host's
	// name (os.Hostname), or "-" if it has none.
	Hostname string
}

// facilities are RFC 5424's facility codes by the names syslog
// configurations use.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility returns the code of a syslog facility name; "" is local0.
func ParseFacility(name string) (int, bool) {
	if name == "" {
		return 16, true
	}
	code, ok := facilities[name]
	return code, ok
}

// severityInfo is the severity of audit messages: informational.
const severityInfo = 6

const (
	// syslogDialTimeout bounds a connection attempt.
	syslogDialTimeout = 5 * time.Second
	// syslogWriteTimeout bounds one write; a stalled server's connection
	// is dropped and dialed again.
	syslogWriteTimeout = 5 * time.Second
	// syslogMinBackoff and syslogMaxBackoff bound the wait between
	// connection attempts, doubled after each failure.
	syslogMinBackoff = 100 * time.Millisecond
	syslogMaxBackoff = 10 * time.Second
)

// NewSyslogSink checks c and starts a sink that sends audit events to a
// syslog server. It connects in its writer goroutine, so a server that is
// down at start or goes away later only loses events (counted, and
// reported to errLog, which may be nil); it reconnects with backoff.
func NewSyslogSink(c SyslogConfig, errLog *slog.Logger) (*Sink, error) {
	w, err := newSyslogWriter(c)
	if err != nil {
		return nil, err
	}
	s := newSink("syslog", false, w, errLog, nil)
	s.encode = w.header.appendFrame
	return s, nil
}

// Check reports whether [NewSyslogSink] accepts c.
func (c SyslogConfig) Check() error {
	_, err := newSyslogWriter(c)
	return err
}

// syslogHeader formats messages.
type syslogHeader struct {
	pri    string // "<134>1 "
	fields string // " HOSTNAME APP-NAME PROCID audit - "
}

// appendFrame appends the octet-counted RFC 5424 message of an event at
// t: its length, a space, and the message, whose MSG is json without its
// newline.
func (h *syslogHeader) appendFrame(b []byte, t time.Time, json []byte) []byte {
	if n := len(json); n > 0 && json[n-1] == '\n' {
		json = json[:n-1]
	}
	const stamp = len("2006-01-02T15:04:05.000000Z")
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 { // RFC 5424 has no other years
		t = time.Time{}
	}
	n := len(h.pri) + stamp + len(h.fields) + len(json)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = append(b, h.pri...)
	b = t.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, h.fields...)
	return append(b, json...)
}

// newSyslogHeader returns the header parts of c's messages.
func newSyslogHeader(c SyslogConfig) (*syslogHeader, error) {
	fac, ok := ParseFacility(c.Facility)
	if !ok {
		return nil, fmt.Errorf("log: audit syslog: unknown facility '%s'", c.Facility)
	}
	app := c.AppName
	if app == "" {
		app = "kes"
	}
	if !headerField(app, 48) {
		return nil, fmt.Errorf("log: audit syslog: invalid app name '%s': want 1 to 48 printable ASCII characters", app)
	}
	host := c.Hostname
	if host == "" {
		host, _ = os.Hostname()
		if !headerField(host, 255) {
			host = "-"
		}
	}
	if !headerField(host, 255) {
		return nil, fmt.Errorf("log: audit syslog: invalid hostname '%s'", host)
	}
	return &syslogHeader{
		pri:    "<" + strconv.Itoa(fac*8+severityInfo) + ">1 ",
		fields: " " + host + " " + app + " " + strconv.Itoa(os.Getpid()) + " audit - ",
	}, nil
}

// headerField reports whether s is 1 to max characters of PRINTUSASCII
// (RFC 5424 §6).
func headerField(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// syslogWriter sends framed messages over one connection, dialed on
// demand. Only the sink's writer goroutine uses it.
type syslogWriter struct {
	network, address string
	stream           bool // octet counting on the wire; else a datagram per message
	header           *syslogHeader
	conn             net.Conn
	backoff          time.Duration // wait before the next dial; zero after a success
}

func newSyslogWriter(c SyslogConfig) (*syslogWriter, error) {
	var stream bool
	switch c.Network {
	case "tcp", "unix":
		stream = true
	case "udp", "unixgram":
	default:
		return nil, fmt.Errorf("log: audit syslog: unknown network '%s': want udp, tcp, unix or unixgram", c.Network)
	}
	if c.Address == "" {
		return nil, errors.New("log: audit syslog: no address")
	}
	h, err := newSyslogHeader(c)
	if err != nil {
		return nil, err
	}
	return &syslogWriter{network: c.Network, address: c.Address, stream: stream, header: h}, nil
}

// write sends the frames of batch. It returns the bytes of the frames
// sent and, on failure, a *retryError: the connection is closed and dialed
// again, after a backoff, at the next write.
func (w *syslogWriter) write(ctx context.Context, batch []byte) (int, error) {
	if w.conn == nil {
		if err := w.dial(ctx); err != nil {
			return 0, &retryError{err}
		}
	}
	if err := w.conn.SetWriteDeadline(time.Now().Add(syslogWriteTimeout)); err != nil {
		return 0, w.fail(err)
	}
	// A sink closed past its deadline does not wait for a stalled write.
	conn := w.conn
	defer context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Unix(1, 0)) })()
	if w.stream {
		n, err := w.conn.Write(batch)
		if err != nil {
			return frameStart(batch, n), w.fail(err)
		}
		return n, nil
	}
	sent := 0
	for sent < len(batch) {
		msg, next, ok := nextFrame(batch[sent:])
		if !ok {
			return len(batch), errors.New("log: audit syslog: malformed frame") // cannot happen
		}
		if _, err := w.conn.Write(msg); err != nil {
			return sent, w.fail(err)
		}
		sent += next
	}
	return sent, nil
}

// dial connects, after waiting out the backoff of the last failure.
func (w *syslogWriter) dial(ctx context.Context) error {
	if w.backoff > 0 {
		t := time.NewTimer(w.backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	d := net.Dialer{Timeout: syslogDialTimeout}
	conn, err := d.DialContext(ctx, w.network, w.address)
	if err != nil {
		w.backoff = min(max(2*w.backoff, syslogMinBackoff), syslogMaxBackoff)
		return fmt.Errorf("log: audit syslog: %w", err)
	}
	w.conn = conn
	return nil
}

// fail closes the connection after err and returns err to retry with.
func (w *syslogWriter) fail(err error) error {
	w.conn.Close()
	w.conn = nil
	w.backoff = syslogMinBackoff
	return &retryError{fmt.Errorf("log: audit syslog: %w", err)}
}

// tick does nothing: a connection stays open while the sink lives.
func (w *syslogWriter) tick(time.Time) error { return nil }

func (w *syslogWriter) close() error {
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// nextFrame splits the first octet-counted frame off b: its message and
// the length of the whole frame.
func nextFrame(b []byte) (msg []byte, n int, ok bool) {
	length := 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9' && i < 9:
			length = length*10 + int(c-'0')
		case c == ' ' && i > 0 && i+1+length <= len(b):
			return b[i+1 : i+1+length], i + 1 + length, true
		default:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// countFrames returns the number of whole frames in b.
func countFrames(b []byte) int {
	n := 0
	for len(b) > 0 {
		_, next, ok := nextFrame(b)
		if !ok {
			break
		}
		n++
		b = b[next:]
	}
	return n
}

// frameStart returns the offset of the frame of b that holds byte n: the
// frames before it were sent whole.
func frameStart(b []byte, n int) int {
	off := 0
	for off < len(b) {
		_, next, ok := nextFrame(b[off:])
		if !ok || off+next > n {
			break
		}
		off += next
	}
	return off
}
