package log

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openkes/kes"
)

// AuditEvent describes one API call for the audit log. The server logs one
// for every API call it answers, errors included (observability.md §2.1,
// "one event per request" as the KES docs describe it).
type AuditEvent struct {
	// Time stamps the record. If zero, [AuditLog.Log] uses the current time.
	Time time.Time

	// Method and Path are the HTTP method and the URL path of the request,
	// without query string. Only names may appear in a path, never secrets.
	Method, Path string

	// IP is the address of the TCP peer (or the forwarded client address
	// in proxy mode). The zero value means unknown.
	IP netip.Addr

	// Identity is the identity of the caller; empty means unknown.
	Identity kes.Identity

	// Status is the HTTP status code of the response.
	Status int

	// Duration is the time the server took to answer.
	Duration time.Duration

	// Denied marks a request refused before its handler ran, because its
	// caller could not be authenticated, is not allowed to call it or is
	// over its rate limit.
	// Denied lines are rate limited per source (see [AuditLog]); the
	// flag itself is not printed.
	Denied bool
}

// AuditLog is the server's audit log (observability.md §2). Each event
// passing the level becomes a slog text line at INFO on the console writer,
// for example
//
//	time=2026-11-27T15:52:25.928Z level=INFO msg="secret key 'imp' created" req.method=PUT req.path=/v1/key/import/imp req.ip=127.0.0.1 req.identity=9fa7…98bf res.code=200 res.time=427.471µs
//
// and a JSON object on every [Subscription]:
//
//	{"time":"2026-11-27T15:52:25.928123456Z","request":{"ip":"127.0.0.1","path":"/v1/key/import/imp","identity":"9fa7…98bf"},"response":{"code":200,"time":427000}}
//
// The message is "secret key '<name>' created" for a successful (200) key
// create or import, "secret key '<name>' deleted" for a successful key
// delete, as upstream prints them, and "<METHOD> <path>" for every other
// call. On the console an unknown address or identity prints as "<unknown>";
// in JSON the field is left out.
//
// response.time is the duration in nanoseconds, truncated to microseconds,
// as KES releases up to 2023-10 sent it. Later releases send milliseconds,
// but the SDK and `kes log` decode the field as a Go duration, so only
// nanoseconds are shown correctly by every client.
//
// # Denied requests
//
// A client that is refused ([AuditEvent].Denied) tends to retry at once, so
// its lines are rate limited per source: its IP address or, when that is
// unknown, its identity. A source writes up to 20 lines at once and then 5
// a second, and all sources together 200 at once and then 50 a second; the
// lines left out are counted, and every 10 s each source that had lines
// left out gets one summary line in the audit log, in the place of the
// missing ones: the line of the last request left out, with the message
// "denied requests suppressed" and the number appended, e.g.
//
//	time=2026-11-27T15:52:35.928Z level=INFO msg="denied requests suppressed" req.method=PUT req.path=/v1/key/create/k req.ip=10.0.0.5 req.identity=<unknown> res.code=403 res.time=0s suppressed=1234
//
// and on the stream that request's JSON event with "suppressed":1234 added
// to the object, which clients that decode audit events read as one more
// event. Other lines are never left out. Lines left out by the limit on all
// sources together are summarized together, without address and identity,
// as are those of sources that find the table of sources full (1,024
// entries); entries expire 10 s after their last denied request.
// Summaries are written by a goroutine that runs only while the table has
// entries; [AuditLog.Close] stops it and writes what is pending.
//
// An AuditLog must be created with [NewAuditLog]. It is safe for concurrent
// use.
type AuditLog struct {
	onEvent func()
	level   slog.Leveler
	console *lineWriter // nil: no console
	hub     hub
	denied  *deniedLimiter
	sinks   []*Sink
}

// NewAuditLog returns an audit log that prints to w and streams to
// subscribers when level is INFO or below. A nil level means INFO; pass a
// *slog.LevelVar to change the level at run time. A nil w means no
// console: with no sink and no subscriber either, an event is then only
// counted, not formatted.
//
// onEvent, if not nil, is called once for every event that passes the
// level, from the first one on, whether or not anyone subscribes. It may be
// called concurrently and must be cheap.
//
// The audit log takes the sinks over: each event's JSON line (the stream
// format) is queued to every sink, and [AuditLog.Shutdown] closes them.
func NewAuditLog(w io.Writer, level slog.Leveler, onEvent func(), sinks ...*Sink) *AuditLog {
	if level == nil {
		level = slog.LevelInfo
	}
	a := &AuditLog{
		onEvent: onEvent,
		level:   level,
		sinks:   sinks,
	}
	if w != nil {
		a.console = newLineWriter(w)
	}
	a.denied = newDeniedLimiter(a.logSummary)
	return a
}

// Enabled reports whether the current level lets audit records (INFO) pass.
func (a *AuditLog) Enabled() bool { return a.level.Level() <= slog.LevelInfo }

// Subscribe returns a subscription to the events logged from now on. The
// caller must close it. It fails with [ErrTooManySubscribers] while the log
// has [MaxSubscribers] subscriptions, and with [ErrClosed] after Close.
func (a *AuditLog) Subscribe() (*Subscription, error) { return a.hub.subscribe() }

// Close ends every subscription and refuses new ones, stops the goroutine
// that writes the summaries of denied requests and writes the pending
// ones. Events logged after Close are still written, to the console and
// the sinks, all of them, but not streamed. Close may be called more than
// once.
func (a *AuditLog) Close() {
	a.hub.close()
	a.denied.close()
	a.Flush()
}

// Shutdown closes the sinks: each writes the events queued for it, until
// ctx is done (see [Sink.Close]). Call it after the last event, once the
// requests in flight are done; events logged later are dropped by the
// sinks (and counted). The error joins those of the sinks that could not
// write everything. Shutdown may be called more than once.
func (a *AuditLog) Shutdown(ctx context.Context) error {
	errs := make([]error, len(a.sinks))
	var wg sync.WaitGroup
	for i, s := range a.sinks {
		wg.Go(func() { errs[i] = s.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SinkDropped returns how many events the sinks have lost, over their
// life (see [Sink.Dropped]).
func (a *AuditLog) SinkDropped() uint64 {
	var n uint64
	for _, s := range a.sinks {
		n += s.Dropped()
	}
	return n
}

// Dropped returns how many events subscribers have lost because their
// buffer was full, over the life of a.
func (a *AuditLog) Dropped() uint64 { return a.hub.dropped() }

// Suppressed returns how many lines of denied requests were left out (and
// summarized), over the life of a.
func (a *AuditLog) Suppressed() uint64 { return a.denied.suppressed.Load() }

// Log records ev if the level lets INFO records pass. Console write errors
// are ignored: an audit line that cannot be printed must not fail the
// request that produced it.
//
// Log does not wait for another goroutine's console write: if one is in
// progress, the line is queued and that goroutine writes it, in order, before
// its own Log returns. Lines are never dropped; while 1 MiB of lines wait,
// Log waits. See [AuditLog.Flush].
func (a *AuditLog) Log(ev AuditEvent) {
	if !a.Enabled() {
		return
	}
	if ev.Denied && !a.denied.allow(&ev) {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if a.console != nil {
		bp := linePool.Get().(*[]byte)
		line := appendAuditLine((*bp)[:0], &ev)
		a.console.write(line)
		putLine(bp, line)
	}
	if f := a.onEvent; f != nil {
		f()
	}
	stream := a.hub.active()
	if !stream && len(a.sinks) == 0 {
		return
	}
	bp := linePool.Get().(*[]byte)
	event, ok := appendAuditEvent((*bp)[:0], &ev)
	if ok {
		a.toSinks(ev.Time, event)
		if stream {
			a.hub.publish(bytes.Clone(event))
		}
	}
	putLine(bp, event)
}

// toSinks queues the JSON line event of an event at t to every sink.
func (a *AuditLog) toSinks(t time.Time, event []byte) {
	for _, s := range a.sinks {
		if s.encode == nil {
			s.offer(event)
			continue
		}
		bp := linePool.Get().(*[]byte)
		rec := s.record((*bp)[:0], t, event)
		s.offer(rec)
		putLine(bp, rec)
	}
}

// putLine returns the buffer bp, now holding line, to linePool, unless
// line has grown too long to keep.
func putLine(bp *[]byte, line []byte) {
	if cap(line) <= maxPooledLine {
		*bp = line
		linePool.Put(bp)
	}
}

// logSummary writes the summary line of n suppressed denied requests, the
// last of which was ev.
func (a *AuditLog) logSummary(ev *AuditEvent, n uint64) {
	if !a.Enabled() { // switched off since: like the lines it stands for
		return
	}
	now := time.Now()
	if a.console != nil {
		a.console.write(appendSummaryLine(nil, now, ev, n))
	}
	if f := a.onEvent; f != nil {
		f()
	}
	if !a.hub.active() && len(a.sinks) == 0 {
		return
	}
	if event := summaryEvent(now, ev, n); event != nil {
		a.toSinks(now, event)
		if a.hub.active() {
			a.hub.publish(event)
		}
	}
}

// Flush waits until every line of the events logged before has been written
// to the console writer. Under constant traffic it may wait for lines logged
// later, too. The sinks write on their own schedule (see [Sink]).
func (a *AuditLog) Flush() {
	if a.console != nil {
		a.console.flush()
	}
}

// maxPooledLine is the capacity up to which a line buffer is reused; a
// longer one (an odd, long path) is left to the garbage collector.
const maxPooledLine = 4 << 10

// linePool holds *[]byte buffers for console lines.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// auditEvent returns the newline-terminated JSON stream event of ev
// (observability.md §2.3), or nil if it cannot be encoded (a time outside
// years 0–9999 or with a zone offset of a day or more). The event is built
// by hand; its bytes are those json.Marshal prints for
//
//	struct {
//		Time    time.Time `json:"time"` // RFC 3339 with nanoseconds
//		Request struct {
//			IP       string `json:"ip,omitempty"`
//			Path     string `json:"path"`
//			Identity string `json:"identity,omitempty"`
//		} `json:"request"`
//		Response struct {
//			Code int   `json:"code"`
//			Time int64 `json:"time"` // nanoseconds, see AuditLog
//		} `json:"response"`
//	}
//
// which the tests check. The returned slice is newly allocated.
func auditEvent(ev *AuditEvent) []byte {
	bp := linePool.Get().(*[]byte)
	b, ok := appendAuditEvent((*bp)[:0], ev)
	var event []byte
	if ok {
		event = bytes.Clone(b)
	}
	putLine(bp, b)
	return event
}

// appendAuditEvent appends the JSON line of ev (see [auditEvent]) to b,
// and reports false if ev cannot be encoded.
func appendAuditEvent(b []byte, ev *AuditEvent) ([]byte, bool) {
	n := len(b)
	b = append(b, `{"time":"`...)
	b, err := ev.Time.AppendText(b)
	if err != nil {
		return b[:n], false
	}
	b = append(b, `","request":{`...)
	if ev.IP.IsValid() {
		b = append(b, `"ip":`...)
		if ip := ev.IP.Unmap(); ip.Zone() == "" {
			b = append(b, '"')
			b = ip.AppendTo(b) // digits, dots and colons: nothing to escape
			b = append(b, '"')
		} else {
			b = appendJSONString(b, ip.String())
		}
		b = append(b, ',')
	}
	b = append(b, `"path":`...)
	b = appendJSONString(b, ev.Path)
	if ev.Identity != "" {
		b = append(b, `,"identity":`...)
		b = appendJSONString(b, ev.Identity.String())
	}
	b = append(b, `},"response":{"code":`...)
	b = strconv.AppendInt(b, int64(ev.Status), 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, int64(ev.Duration.Truncate(time.Microsecond)), 10)
	return append(b, "}}\n"...), true
}

// appendJSONString appends s as a JSON string the way json.Marshal encodes
// it. Strings of printable ASCII without '"', '\', '<', '>' or '&' (all
// paths and identities the server sees in practice) are copied as they are;
// any other is left to json.Marshal, so that its escaping (HTML characters,
// invalid UTF-8, U+2028 and U+2029) is followed exactly.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
