package log

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The console line of an audit event is formatted by hand rather than by a
// slog.TextHandler: the server prints one for every API call, and building
// and handling a slog.Record costs several allocations and most of the
// audit log's CPU time. The output is byte for byte what slog.TextHandler
// prints for the record
//
//	slog.NewRecord(ev.Time, slog.LevelInfo, auditMessage(ev), 0) with
//	Request(ev.Method, ev.Path, ev.IP, ev.Identity) and
//	slog.GroupAttrs("res", slog.Int("code", ev.Status), slog.Duration("time", ev.Duration))
//
// which the tests check against a real slog.TextHandler.

// appendAuditLine appends the newline-terminated console line of ev to b.
// ev.Time must not be zero (slog would leave the time out).
func appendAuditLine(b []byte, ev *AuditEvent) []byte {
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, ev.Time)
	b = append(b, " level=INFO msg="...)
	b = appendAuditMessage(b, ev)
	b = append(b, " req.method="...)
	b = appendTextString(b, ev.Method)
	b = append(b, " req.path="...)
	b = appendTextString(b, ev.Path)
	b = append(b, " req.ip="...)
	b = appendTextIP(b, ev.IP)
	b = append(b, " req.identity="...)
	b = appendTextString(b, identityString(ev.Identity))
	b = append(b, " res.code="...)
	b = strconv.AppendInt(b, int64(ev.Status), 10)
	b = append(b, " res.time="...)
	b = append(b, ev.Duration.String()...) // inlined: no allocation
	return append(b, '\n')
}

// appendRFC3339Millis appends t as slog's text handler prints a record's
// time: RFC 3339 with exactly three fractional digits, in t's zone. Like
// slog, it formats with time.RFC3339Nano, which is fast, after truncating
// to milliseconds and adding a tenth of a millisecond so that no trailing
// zero is trimmed, and then drops the fourth fractional digit.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// keyMessages are the audit messages of successful key creation and
// deletion: "secret key '<name>' <verb>" for a call to a path with prefix.
var keyMessages = [...]struct{ prefix, verb string }{
	{"/v1/key/create/", "created"},
	{"/v1/key/import/", "created"},
	{"/v1/key/delete/", "deleted"},
}

// auditMessage returns the msg text of the console record of ev.
func auditMessage(ev *AuditEvent) string {
	if name, verb, ok := keyMessage(ev); ok {
		return "secret key '" + name + "' " + verb
	}
	return ev.Method + " " + ev.Path
}

// keyMessage returns the key name and verb of the message of a successful
// key creation or deletion, and ok false for any other event.
func keyMessage(ev *AuditEvent) (name, verb string, ok bool) {
	if ev.Status != 200 {
		return "", "", false
	}
	for _, m := range keyMessages {
		if name, ok := strings.CutPrefix(ev.Path, m.prefix); ok && name != "" {
			return name, m.verb, true
		}
	}
	return "", "", false
}

// appendAuditMessage appends auditMessage(ev) as slog's text handler prints
// it, without building the message string. The message always contains a
// space, so slog always quotes it. Its parts are joined by ASCII characters,
// at which strconv.Quote's rune decoding of the whole message restarts, so
// quoting the parts one by one yields the same bytes.
func appendAuditMessage(b []byte, ev *AuditEvent) []byte {
	b = append(b, '"')
	if name, verb, ok := keyMessage(ev); ok {
		b = append(b, "secret key '"...)
		b = appendQuotedInner(b, name)
		b = append(b, "' "...)
		b = append(b, verb...)
	} else {
		b = appendQuotedInner(b, ev.Method)
		b = append(b, ' ')
		b = appendQuotedInner(b, ev.Path)
	}
	return append(b, '"')
}

// appendQuotedInner appends strconv.Quote(s) without its enclosing quotes.
func appendQuotedInner(b []byte, s string) []byte {
	if !needsEscape(s) {
		return append(b, s...)
	}
	start := len(b)
	b = strconv.AppendQuote(b, s)
	end := copy(b[start:], b[start+1:len(b)-1])
	return b[:start+end]
}

// needsEscape reports whether strconv.Quote would escape any byte of s,
// that is, whether s holds a quote, a backslash, invalid UTF-8 or a rune
// that is not printable.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == '"' || c == '\\' || c >= 0x7f {
			return true
		}
	}
	return false
}

// appendTextString appends s as slog's text handler prints a string value:
// quoted by strconv.Quote if it needs quoting, as is otherwise.
func appendTextString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// appendTextIP appends ipString(ip) as a text value. An address without a
// zone consists of hex digits, dots and colons, which never need quoting,
// and is appended without building its string.
func appendTextIP(b []byte, ip netip.Addr) []byte {
	if !ip.IsValid() {
		return appendTextString(b, unknown)
	}
	if ip = ip.Unmap(); ip.Zone() != "" {
		return appendTextString(b, ip.String())
	}
	return ip.AppendTo(b)
}

// needsQuoting reports whether slog's text handler quotes the string value
// s: when it is empty or holds a space, '=', '"', an ASCII control
// character, invalid UTF-8, U+FFFD, or a Unicode space or non-printable
// rune. A backslash alone does not make slog quote.
func needsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
