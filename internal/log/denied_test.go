package log_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openkes/kes/internal/log"
)

// byteCounter counts the bytes and lines written to it, and keeps the lines
// that contain keep.
type byteCounter struct {
	keep  string
	mu    sync.Mutex
	bytes int
	lines int
	kept  []string
}

func (c *byteCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes += len(p)
	c.lines += bytes.Count(p, []byte{'\n'})
	if c.keep != "" {
		sc := bufio.NewScanner(bytes.NewReader(p))
		for sc.Scan() {
			if strings.Contains(sc.Text(), c.keep) {
				c.kept = append(c.kept, sc.Text())
			}
		}
	}
	return len(p), nil
}

var suppressedRE = regexp.MustCompile(` suppressed=(\d+)$`)

// summaries returns the suppressed counts of the summary lines in lines.
func summaries(t *testing.T, lines []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, l := range lines {
		if !strings.Contains(l, `msg="denied requests suppressed"`) {
			continue
		}
		m := suppressedRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("summary line without count: %q", l)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

// TestDeniedFlood floods the audit log with denied requests from one
// address, 1,000 a second for 30 s (fake time), and compares the bytes
// written with those of the same events not marked denied: what the audit
// log wrote for them before denied lines were limited.
func TestDeniedFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, seconds = 1000, 30
		attacker := netip.MustParseAddr("10.0.0.66")
		limited := &byteCounter{keep: "req.ip=10.0.0.66"}
		unlimited := new(byteCounter)
		a := log.NewAuditLog(limited, nil, nil)
		before := log.NewAuditLog(unlimited, nil, nil)
		sub := subscribe(t, a)
		var streamed []string
		var readers sync.WaitGroup
		readers.Go(func() {
			for ev := range sub.Events() {
				if bytes.Contains(ev, []byte(`"suppressed"`)) {
					streamed = append(streamed, string(ev))
				}
			}
		})

		denied := log.AuditEvent{Method: "PUT", Path: "/v1/key/create/x", IP: attacker, Status: 403, Denied: true}
		allowed := log.AuditEvent{Method: "GET", Path: "/v1/key/describe/k", IP: attacker, Identity: testIdentity, Status: 200}
		start := time.Now()
		for i := range rate * seconds {
			a.Log(denied)
			plain := denied
			plain.Denied = false
			before.Log(plain)
			if i%1000 == 0 {
				a.Log(allowed) // never limited, even from the flooding address
				before.Log(allowed)
			}
			time.Sleep(time.Second / rate)
		}
		elapsed := time.Since(start)
		time.Sleep(15 * time.Second) // the burst is over: the last summary is due
		synctest.Wait()

		sums := summaries(t, limited.kept)
		var summarized uint64
		for _, n := range sums {
			summarized += n
		}
		deniedLines := 0
		allowedLines := 0
		for _, l := range limited.kept {
			switch {
			case strings.Contains(l, "res.code=403") && !strings.Contains(l, "suppressed="):
				deniedLines++
			case strings.Contains(l, "res.code=200"):
				allowedLines++
			}
		}
		t.Logf("%d denied requests in %v from one address: audit log %d bytes (%d lines) before, %d bytes (%d lines: %d denied, %d summaries, %d allowed) after",
			rate*seconds, elapsed, unlimited.bytes, unlimited.lines, limited.bytes, limited.lines, deniedLines, len(sums), allowedLines)

		// 20 at once, then 5 a second: 170 lines; a little slack for
		// the float arithmetic of the bucket.
		if maxLines := 20 + 5*seconds + 1; deniedLines > maxLines || deniedLines < maxLines-3 {
			t.Errorf("%d denied lines written, want about %d", deniedLines, maxLines)
		}
		if allowedLines != seconds {
			t.Errorf("%d allowed lines written, want all %d", allowedLines, seconds)
		}
		// One summary every 10 s while the flood lasts.
		if len(sums) != seconds/10 {
			t.Errorf("%d summary lines, want %d", len(sums), seconds/10)
		}
		if got, want := summarized+uint64(deniedLines), uint64(rate*seconds); got != want {
			t.Errorf("written %d + summarized %d = %d denied requests, want %d", deniedLines, summarized, got, want)
		}
		if a.Suppressed() != summarized {
			t.Errorf("Suppressed() = %d, want %d", a.Suppressed(), summarized)
		}
		if limited.bytes*100 > unlimited.bytes {
			t.Errorf("audit log wrote %d bytes, want under 1%% of the %d without the limit", limited.bytes, unlimited.bytes)
		}

		sub.Close()
		readers.Wait()
		if len(streamed) != len(sums) {
			t.Fatalf("%d summaries streamed, want %d", len(streamed), len(sums))
		}
		var ev struct {
			Request struct {
				IP   string `json:"ip"`
				Path string `json:"path"`
			} `json:"request"`
			Response struct {
				Code int `json:"code"`
			} `json:"response"`
			Suppressed uint64 `json:"suppressed"`
		}
		if err := json.Unmarshal([]byte(streamed[0]), &ev); err != nil {
			t.Fatalf("summary event %q: %v", streamed[0], err)
		}
		if ev.Request.IP != "10.0.0.66" || ev.Request.Path != "/v1/key/create/x" || ev.Response.Code != 403 || ev.Suppressed != sums[0] {
			t.Errorf("summary event %q, want ip 10.0.0.66, the path, 403 and suppressed %d", streamed[0], sums[0])
		}
		a.Close()
		before.Close()
	})
}

// TestDeniedSummaryLine pins the console line of a summary and checks that
// it is what slog.TextHandler prints.
func TestDeniedSummaryLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &byteCounter{keep: "suppressed="}
		a := log.NewAuditLog(out, nil, nil)
		ev := log.AuditEvent{Method: "GET", Path: "/v1/key/describe/k", IP: netip.MustParseAddr("::ffff:10.0.0.7"), Identity: testIdentity, Status: 403, Duration: 3 * time.Microsecond, Denied: true}
		for range 25 {
			a.Log(ev)
		}
		a.Close() // writes the pending summary at once
		if len(out.kept) != 1 {
			t.Fatalf("summary lines %q, want one", out.kept)
		}
		want := regexp.MustCompile(`^time=\S+ level=INFO msg="denied requests suppressed" req.method=GET req.path=/v1/key/describe/k req.ip=10.0.0.7 req.identity=` + string(testIdentity) + ` res.code=403 res.time=3µs suppressed=5$`)
		if !want.MatchString(out.kept[0]) {
			t.Errorf("summary line %q, want it to match %v", out.kept[0], want)
		}
		if out.lines != 21 {
			t.Errorf("%d lines, want 20 denied and the summary", out.lines)
		}
		// After Close nothing could summarize: every line is written.
		a.Log(ev)
		if out.lines != 22 || a.Suppressed() != 5 {
			t.Errorf("after Close: %d lines and %d suppressed, want 22 and 5", out.lines, a.Suppressed())
		}
	})
}

// TestDeniedSources checks that sources are limited apart: one flooding
// address does not silence another, and an unknown address is limited by
// identity.
func TestDeniedSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := new(byteCounter)
		a := log.NewAuditLog(out, nil, nil)
		defer a.Close()
		flood := log.AuditEvent{Method: "GET", Path: "/v1/status", IP: netip.MustParseAddr("10.0.0.1"), Status: 403, Denied: true}
		for range 1000 {
			a.Log(flood)
		}
		other := log.AuditEvent{Method: "GET", Path: "/v1/status", IP: netip.MustParseAddr("10.0.0.2"), Status: 403, Denied: true}
		byID := log.AuditEvent{Method: "GET", Path: "/v1/status", Identity: testIdentity, Status: 400, Denied: true}
		for range 10 {
			a.Log(other)
			a.Log(byID)
		}
		if out.lines != 40 {
			t.Errorf("%d lines, want 20 of the flood and all 20 of the others", out.lines)
		}
		if a.Suppressed() != 980 {
			t.Errorf("Suppressed() = %d, want 980", a.Suppressed())
		}
	})
}

// TestDeniedManySources checks the bound on all sources together: a flood
// from 5,000 addresses writes 200 lines at once and 50 a second.
func TestDeniedManySources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &byteCounter{keep: "suppressed="}
		a := log.NewAuditLog(out, nil, nil)
		ip := netip.MustParseAddr("2001:db8::")
		for i := range 5000 {
			a.Log(log.AuditEvent{Method: "GET", Path: "/v1/status", IP: ip, Status: 403, Denied: true})
			ip = ip.Next()
			if i%500 == 499 {
				time.Sleep(time.Second)
			}
		}
		a.Close()
		written := out.lines - len(out.kept)
		if max := 200 + 50*10; written > max {
			t.Errorf("%d lines for 5,000 sources in 10 s, want at most %d", written, max)
		}
		// The sources were each limited by the total, not by their own
		// rate: they are summarized together, about once every 10 s.
		if n := len(out.kept); n > 2 {
			t.Errorf("%d summary lines %q, want at most 2", n, out.kept)
		}
		var summarized uint64
		for _, n := range summaries(t, out.kept) {
			summarized += n
		}
		if got := summarized + uint64(written); got != 5000 {
			t.Errorf("written %d + summarized %d = %d, want 5000", written, summarized, got)
		}
		t.Logf("5,000 denied requests from 5,000 addresses in 10 s: %d lines, %d summaries", written, len(out.kept))
	})
}

// TestDeniedIdleStopsGoroutine checks that the summary goroutine ends by
// itself once every source is idle, so an audit log left open leaks
// nothing: synctest.Test fails if a goroutine of its bubble is left.
func TestDeniedIdleStopsGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := log.NewAuditLog(io.Discard, nil, nil)
		for range 30 {
			a.Log(log.AuditEvent{Method: "GET", Path: "/v1/status", IP: netip.MustParseAddr("10.0.0.1"), Status: 403, Denied: true})
		}
		time.Sleep(time.Minute)
	})
}
