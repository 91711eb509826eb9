package log

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// slogAuditLine returns the console line slog.TextHandler prints for ev,
// the reference that appendAuditLine must match byte for byte.
func slogAuditLine(t testing.TB, ev *AuditEvent) string {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(ev.Time, slog.LevelInfo, auditMessage(ev), 0)
	r.AddAttrs(
		Request(ev.Method, ev.Path, ev.IP, ev.Identity),
		slog.GroupAttrs("res", slog.Int("code", ev.Status), slog.Duration("time", ev.Duration)),
	)
	if err := slog.NewTextHandler(&buf, nil).Handle(context.Background(), r); err != nil {
		t.Fatalf("slog: %v", err)
	}
	return buf.String()
}

// auditJSON is the stream form of an audit event as encoding/json prints it,
// the reference that auditEvent must match byte for byte.
type auditJSON struct {
	Time    time.Time `json:"time"`
	Request struct {
		IP       string `json:"ip,omitempty"`
		Path     string `json:"path"`
		Identity string `json:"identity,omitempty"`
	} `json:"request"`
	Response struct {
		Code int   `json:"code"`
		Time int64 `json:"time"`
	} `json:"response"`
}

// jsonAuditEvent returns the stream event json.Marshal makes of ev, or nil
// if it fails.
func jsonAuditEvent(ev *AuditEvent) []byte {
	var v auditJSON
	v.Time = ev.Time
	if ev.IP.IsValid() {
		v.Request.IP = ev.IP.Unmap().String()
	}
	v.Request.Path = ev.Path
	v.Request.Identity = ev.Identity.String()
	v.Response.Code = ev.Status
	v.Response.Time = int64(ev.Duration.Truncate(time.Microsecond))
	b, err := json.Marshal(&v)
	if err != nil {
		return nil
	}
	return append(b, '\n')
}

// checkAuditLine checks that the console line and the stream event of ev
// are those that slog.TextHandler and json.Marshal make of it.
func checkAuditLine(t *testing.T, ev *AuditEvent) {
	t.Helper()
	if got, want := auditEvent(ev), jsonAuditEvent(ev); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("stream event of %#v:\n got %q\nwant %q", *ev, got, want)
	}
	want := slogAuditLine(t, ev)
	if got := string(appendAuditLine(nil, ev)); got != want {
		t.Fatalf("event %#v:\n got %q\nwant %q", *ev, got, want)
	}
	// Appending to a buffer that holds something must not disturb it.
	if got := string(appendAuditLine([]byte("prefix"), ev)); got != "prefix"+want {
		t.Fatalf("event %#v appended to a prefix:\n got %q\nwant %q", *ev, got, "prefix"+want)
	}
}

// oddStrings are the parts random paths, methods and identities are made
// of: everything that changes how slog quotes a value.
var oddStrings = []string{
	"", "/", "/v1/key/create/", "/v1/key/import/", "/v1/key/delete/", "/v1/key/generate/", "k", "my-key",
	" ", "=", `"`, `\`, "'", "<", ">", "&", "\t", "\n", "\r", "\x00", "\x1f", "\x7f",
	"é", "日本", "😀", "\u00a0", "\u2028", "\u200b", "\u0085", "\ufffd", "\xff", "\xe2\x82", "\xc0\xaf", "\U0010ffff",
	"%", "?", "#", "..", "µ",
}

func randString(rng *rand.Rand) string {
	var sb strings.Builder
	for range rng.IntN(6) {
		sb.WriteString(oddStrings[rng.IntN(len(oddStrings))])
	}
	return sb.String()
}

var oddIPs = []netip.Addr{
	{},
	netip.MustParseAddr("127.0.0.1"),
	netip.MustParseAddr("0.0.0.0"),
	netip.MustParseAddr("::"),
	netip.MustParseAddr("::1"),
	netip.MustParseAddr("::ffff:10.0.0.5"),
	netip.MustParseAddr("2001:db8::1:0:0:1"),
	netip.MustParseAddr("fe80::1%eth0"),
	netip.MustParseAddr("::ffff:10.0.0.5%eth0"),
	netip.MustParseAddr("fe80::1").WithZone("a b"),
	netip.MustParseAddr("fe80::1").WithZone(`x="y"`),
}

var oddZones = []*time.Location{
	time.UTC,
	time.FixedZone("", -5*3600),
	time.FixedZone("CET", 3600),
	time.FixedZone("odd", 5*3600+45*60+30),
	time.Local,
}

func randDuration(rng *rand.Rand) time.Duration {
	switch rng.IntN(6) {
	case 0:
		return time.Duration(rng.IntN(1000)) // ns
	case 1:
		return time.Duration(rng.IntN(1e6)) // µs
	case 2:
		return time.Duration(rng.IntN(1e9)) // ms
	case 3:
		return time.Duration(rng.Int64N(int64(100 * time.Hour)))
	case 4:
		return []time.Duration{0, -1, math.MinInt64, math.MaxInt64, time.Second, time.Minute, -1500 * time.Microsecond}[rng.IntN(7)]
	default:
		return time.Duration(rng.Uint64())
	}
}

func randTime(rng *rand.Rand) time.Time {
	var t time.Time
	switch rng.IntN(4) {
	case 0:
		t = time.Now() // with a monotonic reading
	case 1:
		// Around millisecond boundaries.
		t = time.Unix(rng.Int64N(4e9), int64(rng.IntN(1000))*1e6+int64(rng.IntN(3))-1)
	case 2:
		t = time.Date(rng.IntN(10000), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e9), time.UTC)
	default:
		t = time.Unix(rng.Int64N(4e9), rng.Int64N(1e9))
	}
	return t.In(oddZones[rng.IntN(len(oddZones))])
}

func randEvent(rng *rand.Rand) AuditEvent {
	ev := AuditEvent{
		Time:     randTime(rng),
		Method:   []string{"GET", "PUT", "POST", "DELETE", "", "M E", `"`, randString(rng)}[rng.IntN(8)],
		Path:     randString(rng),
		IP:       oddIPs[rng.IntN(len(oddIPs))],
		Identity: []kes.Identity{"", testIdentity, kes.Identity(randString(rng))}[rng.IntN(3)],
		Status:   []int{200, 200, 400, 403, 404, 500, 0, -1, math.MaxInt, math.MinInt}[rng.IntN(10)],
		Duration: randDuration(rng),
	}
	if rng.IntN(2) == 0 {
		// Key calls get the "secret key '…' …" message.
		ev.Path = oddStrings[2+rng.IntN(4)] + ev.Path
	}
	return ev
}

const testIdentity = kes.Identity("9fa7ccfe82a8b0e60cd865600c86fbeca8fc01159a2ed1818d7522471c3a98bf")

func TestAuditLineMatchesSlog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ev := randEvent(rng)
		checkAuditLine(t, &ev)
	}
}

func TestAuditLineEdgeCases(t *testing.T) {
	base := AuditEvent{
		Time: time.Date(2026, 11, 27, 15, 52, 25, 928123456, time.UTC), Method: "PUT", Path: "/v1/key/import/imp",
		IP: netip.MustParseAddr("127.0.0.1"), Identity: testIdentity, Status: 200, Duration: 427471 * time.Nanosecond,
	}
	tests := []struct {
		name string
		edit func(*AuditEvent)
	}{
		{"as logged", func(*AuditEvent) {}},
		{"zero ip and empty identity", func(ev *AuditEvent) { ev.IP, ev.Identity = netip.Addr{}, "" }},
		{"empty key name", func(ev *AuditEvent) { ev.Path = "/v1/key/create/" }},
		{"key name with quote", func(ev *AuditEvent) { ev.Path = `/v1/key/delete/a"b` }},
		{"key name with backslash", func(ev *AuditEvent) { ev.Path = `/v1/key/delete/a\b` }},
		{"key name with space", func(ev *AuditEvent) { ev.Path = "/v1/key/create/a b" }},
		{"key name with equals", func(ev *AuditEvent) { ev.Path = "/v1/key/create/a=b" }},
		{"key name with control", func(ev *AuditEvent) { ev.Path = "/v1/key/create/a\x01\x7f" }},
		{"invalid UTF-8 at the joins", func(ev *AuditEvent) { ev.Method, ev.Path, ev.Status = "GE\xe2\x82", "\xac/x\xf0", 404 }},
		{"split rune at the joins", func(ev *AuditEvent) { ev.Method, ev.Path, ev.Status = "\xe2", "\x82\xac", 404 }},
		{"replacement character", func(ev *AuditEvent) { ev.Path = "/v1/key/create/\ufffd" }},
		{"unicode space", func(ev *AuditEvent) { ev.Path = "/v1/key/describe/a\u00a0b" }},
		{"printable unicode", func(ev *AuditEvent) { ev.Path = "/v1/key/describe/µ日本😀" }},
		{"backslash only", func(ev *AuditEvent) { ev.Path = `/v1/key/describe/a\b` }},
		{"empty method and path", func(ev *AuditEvent) { ev.Method, ev.Path = "", "" }},
		{"identity needs quoting", func(ev *AuditEvent) { ev.Identity = "a b" }},
		{"ip with zone to quote", func(ev *AuditEvent) { ev.IP = netip.MustParseAddr("fe80::1").WithZone("a b") }},
		{"mapped ip", func(ev *AuditEvent) { ev.IP = netip.MustParseAddr("::ffff:1.2.3.4") }},
		{"negative duration", func(ev *AuditEvent) { ev.Duration = -90 * time.Minute }},
		{"min duration", func(ev *AuditEvent) { ev.Duration = math.MinInt64 }},
		{"whole millisecond", func(ev *AuditEvent) { ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }},
		{"before year 1", func(ev *AuditEvent) { ev.Time = time.Date(-5, 1, 2, 3, 4, 5, 999999999, time.UTC) }},
		{"after year 9999", func(ev *AuditEvent) { ev.Time = time.Date(12345, 1, 2, 3, 4, 5, 1e6, time.UTC) }},
		{"odd zone", func(ev *AuditEvent) { ev.Time = ev.Time.In(time.FixedZone("x", -(9*3600 + 30*60))) }},
		{"zone offset of a day", func(ev *AuditEvent) { ev.Time = ev.Time.In(time.FixedZone("x", 24*3600)) }},
		{"html in path", func(ev *AuditEvent) { ev.Path = "/v1/key/describe/<a&b>" }},
		{"line separators in path", func(ev *AuditEvent) { ev.Path = "/v1/key/describe/\u2028\u2029" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base
			tt.edit(&ev)
			checkAuditLine(t, &ev)
		})
	}
}

func FuzzAuditLine(f *testing.F) {
	f.Add("PUT", "/v1/key/import/imp", []byte{127, 0, 0, 1}, "", string(testIdentity), 200, int64(427471), int64(1795794745928123456), 0)
	f.Add("GET", "/v1/key/describe/a b", []byte{}, "", "", 403, int64(0), int64(-1), -18000)
	f.Add("\xe2", "\x82\xac", make([]byte, 16), "eth 0", `"`, -1, int64(math.MinInt64), int64(math.MaxInt64), 3600)
	f.Fuzz(func(t *testing.T, method, path string, ip []byte, zone, identity string, status int, dur, unixNano int64, offset int) {
		var addr netip.Addr
		switch len(ip) {
		case 4:
			addr = netip.AddrFrom4([4]byte(ip))
		case 16:
			addr = netip.AddrFrom16([16]byte(ip)).WithZone(zone)
		}
		ev := AuditEvent{
			Time:   time.Unix(0, unixNano).In(time.FixedZone("", offset%(24*3600))),
			Method: method, Path: path, IP: addr, Identity: kes.Identity(identity),
			Status: status, Duration: time.Duration(dur),
		}
		checkAuditLine(t, &ev)
	})
}

// TestAuditLogAllocs checks that a console line costs no allocation.
func TestAuditLogAllocs(t *testing.T) {
	a := NewAuditLog(io.Discard, nil, nil)
	ev := AuditEvent{
		Time: time.Now(), Method: "POST", Path: "/v1/key/generate/k", IP: netip.MustParseAddr("10.0.0.5"),
		Identity: testIdentity, Status: 200, Duration: 427 * time.Microsecond,
	}
	allocs := testing.AllocsPerRun(1000, func() { a.Log(ev) })
	maxAllocs := 0.0
	if raceEnabled {
		maxAllocs = 1 // sync.Pool drops buffers at random
	}
	if allocs > maxAllocs {
		t.Errorf("Log: %v allocations per event, want at most %v", allocs, maxAllocs)
	}
}
