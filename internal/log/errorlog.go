package log

import (
	"bytes"
	"encoding/json"
	"io"
	stdlog "log"
	"log/slog"
	"net/netip"

	"github.com/openkes/kes"
)

// ErrorLog is the server's error log (observability.md §1). Records handled
// by its [ErrorLog.Logger] that pass the level are written to the console
// writer in slog text format, for example
//
//	time=2026-11-27T15:52:38.955Z level=ERROR msg="..." req.method=PUT req.path=/v1/key/create/k req.ip=10.0.0.5 req.identity=<64 hex>
//
// (time with millisecond precision in the zone of the record's time, which is
// the local zone for records logged through the Logger), and to every
// [Subscription] as {"message":"<that line without its newline>"}\n.
//
// An ErrorLog must be created with [NewErrorLog]. It is safe for concurrent
// use.
type ErrorLog struct {
	onEvent func()
	logger  *slog.Logger
	hub     hub
}

// NewErrorLog returns an error log that prints to w and streams to
// subscribers the records at or above level. A nil level means INFO; pass
// a *slog.LevelVar to change the level at run time.
//
// onEvent, if not nil, is called once for every record that passes the
// level, from the first one on, after it was written to w and before its
// stream event is published, whether or not anyone subscribes. Calls are
// serialized. It must be cheap and must not log to this ErrorLog.
func NewErrorLog(w io.Writer, level slog.Leveler, onEvent func()) *ErrorLog {
	l := &ErrorLog{onEvent: onEvent}
	s := &errorSink{w: w, log: l}
	l.logger = slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: level}))
	return l
}

// Logger returns the logger whose records go to l. Handlers derived from it
// (With, WithGroup) go to l as well.
func (l *ErrorLog) Logger() *slog.Logger { return l.logger }

// ServerLog returns a standard library logger that logs each line as an INFO
// record of l, for http.Server.ErrorLog: the Go HTTP server's messages
// ("http: TLS handshake error from …") then appear as upstream prints them.
func (l *ErrorLog) ServerLog() *stdlog.Logger {
	return slog.NewLogLogger(l.logger.Handler(), slog.LevelInfo)
}

// Subscribe returns a subscription to the events of every record logged
// from now on. The caller must close it. It fails with
// [ErrTooManySubscribers] while the log has [MaxSubscribers]
// subscriptions, and with [ErrClosed] after Close.
func (l *ErrorLog) Subscribe() (*Subscription, error) { return l.hub.subscribe() }

// Close ends every subscription and refuses new ones. Records logged after
// Close are still written to the console. Close may be called more than
// once.
func (l *ErrorLog) Close() { l.hub.close() }

// Dropped returns how many events subscribers have lost because their
// buffer was full, over the life of l.
func (l *ErrorLog) Dropped() uint64 { return l.hub.dropped() }

// errorSink receives the formatted text lines from the slog text handler,
// which calls Write exactly once per record and never concurrently.
type errorSink struct {
	w   io.Writer
	log *ErrorLog
}

func (s *errorSink) Write(line []byte) (int, error) {
	n, err := s.w.Write(line)
	if f := s.log.onEvent; f != nil {
		f()
	}
	if s.log.hub.active() {
		if event := messageEvent(line); event != nil {
			s.log.hub.publish(event)
		}
	}
	return n, err
}

// messageEvent returns the stream event of one text line: a JSON object
// with the line, without its trailing newline, as "message". It returns nil
// if the line cannot be encoded, which cannot happen for a string (invalid
// UTF-8 is replaced, not rejected).
func messageEvent(line []byte) []byte {
	msg := struct {
		Message string `json:"message"`
	}{string(bytes.TrimSuffix(line, []byte{'\n'}))}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil
	}
	return append(b, '\n')
}

// unknown is printed for an unknown peer address or identity.
const unknown = "<unknown>"

// Request returns the "req" attribute group of a record about an API request:
// req.method, req.path, req.ip and req.identity. An IPv4-mapped IPv6 ip
// prints as IPv4; an invalid (zero) ip and an empty identity print as
// "<unknown>". path must be the URL path only; it must
// never carry a query string or anything secret.
func Request(method, path string, ip netip.Addr, identity kes.Identity) slog.Attr {
	return slog.GroupAttrs("req",
		slog.String("method", method),
		slog.String("path", path),
		slog.String("ip", ipString(ip)),
		slog.String("identity", identityString(identity)),
	)
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return unknown
	}
	return ip.Unmap().String()
}

func identityString(id kes.Identity) string {
	if id.IsUnknown() {
		return unknown
	}
	return id.String()
}
