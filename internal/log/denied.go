package log

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/kes"
)

// Limits on the audit lines of denied requests ([AuditEvent].Denied). A
// client that is refused keeps being refused, and every refusal costs a
// line: a flood of requests with an unknown certificate wrote 86 MB of
// audit log in 30 s. So each source may write a burst of lines and then a
// few per second; what is left out is counted and reported by one summary
// line per source every summaryInterval (see [AuditLog]).
const (
	// deniedBurst and deniedRate are the token bucket of one source: the
	// lines it may write at once, and the lines per second after that.
	deniedBurst = 20
	deniedRate  = 5

	// deniedTotalBurst and deniedTotalRate bound the denied lines of all
	// sources together, against a flood from many addresses.
	deniedTotalBurst = 200
	deniedTotalRate  = 50

	// maxDeniedSources bounds the table of sources. Denied requests from
	// further sources, and those refused by the total limit, share one
	// more entry, with unknown address and identity.
	maxDeniedSources = 1024

	// summaryInterval is how often suppressed lines are summarized, and
	// how long a source stays in the table after its last denied request.
	summaryInterval = 10 * time.Second
)

// bucket is a token bucket. Its zero value is empty.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for the time since its last use and takes one token if
// there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if !b.last.IsZero() {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// deniedKey identifies the source of a denied request: its address, or,
// when the address is unknown, its identity. The zero key holds every
// source that finds the table full.
type deniedKey struct {
	ip netip.Addr
	id kes.Identity
}

func sourceOf(ev *AuditEvent) deniedKey {
	if ev.IP.IsValid() {
		return deniedKey{ip: ev.IP.Unmap()}
	}
	return deniedKey{id: ev.Identity}
}

// deniedSource is the state of one source.
type deniedSource struct {
	bucket
	seen       time.Time  // last denied request
	suppressed uint64     // lines left out since the last summary
	latest     AuditEvent // the last one left out
}

// deniedLimiter decides which denied events are written. Its goroutine,
// which writes the summaries, runs only while the table has entries and is
// stopped by close. It must be created with newDeniedLimiter.
type deniedLimiter struct {
	summarize func(ev *AuditEvent, suppressed uint64) // writes a summary line

	mu      sync.Mutex
	sources map[deniedKey]*deniedSource
	total   bucket
	running bool // the summary goroutine runs
	closed  bool
	stop    chan struct{} // closed by close
	wg      sync.WaitGroup

	suppressed atomic.Uint64 // every event left out
}

func newDeniedLimiter(summarize func(*AuditEvent, uint64)) *deniedLimiter {
	return &deniedLimiter{
		summarize: summarize,
		sources:   make(map[deniedKey]*deniedSource),
		total:     bucket{tokens: deniedTotalBurst},
		stop:      make(chan struct{}),
	}
}

// allow reports whether the line of the denied event ev is written, and
// counts it as suppressed otherwise. After close every event is written:
// nothing would report the ones left out.
func (l *deniedLimiter) allow(ev *AuditEvent) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return true
	}
	key := sourceOf(ev)
	src := l.sources[key]
	if src == nil {
		if len(l.sources) >= maxDeniedSources {
			key = deniedKey{}
			src = l.sources[key]
		}
		if src == nil {
			src = &deniedSource{bucket: bucket{tokens: deniedBurst}}
			l.sources[key] = src
		}
	}
	src.seen = now
	if !l.running {
		l.running = true
		l.wg.Go(l.run)
	}
	if src.take(now, deniedRate, deniedBurst) {
		if l.total.take(now, deniedTotalRate, deniedTotalBurst) {
			return true
		}
		// Refused by the limit on all sources: summarized with the
		// other sources refused so, not by this one.
		src.tokens++
		key = deniedKey{}
		if src = l.sources[key]; src == nil {
			src = &deniedSource{bucket: bucket{tokens: deniedBurst}}
			l.sources[key] = src
		}
		src.seen = now
	}
	src.suppressed++
	src.latest = *ev
	if key == (deniedKey{}) {
		// Shared by many sources: name none of them.
		src.latest.IP, src.latest.Identity = netip.Addr{}, ""
	}
	l.suppressed.Add(1)
	return false
}

// run writes the summaries every summaryInterval until the table is empty
// or the limiter is closed.
func (l *deniedLimiter) run() {
	t := time.NewTicker(summaryInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if !l.flush(false) {
			return
		}
	}
}

// flush writes a summary for every source with suppressed lines and
// removes the sources idle for summaryInterval (all of them if final). It
// reports whether the goroutine must go on; if not, it is marked stopped.
func (l *deniedLimiter) flush(final bool) bool {
	type summary struct {
		ev AuditEvent
		n  uint64
	}
	var out []summary
	now := time.Now()
	l.mu.Lock()
	for key, src := range l.sources {
		if src.suppressed > 0 {
			out = append(out, summary{src.latest, src.suppressed})
			src.suppressed = 0
		}
		if final || now.Sub(src.seen) >= summaryInterval {
			delete(l.sources, key)
		}
	}
	more := len(l.sources) > 0
	if !more {
		l.running = false
	}
	l.mu.Unlock()
	for i := range out {
		l.summarize(&out[i].ev, out[i].n)
	}
	return more
}

// close stops the goroutine, waits for it and writes the last summaries.
// Calling it again does nothing.
func (l *deniedLimiter) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.stop)
	l.mu.Unlock()
	l.wg.Wait()
	l.flush(true)
}

// summaryMessage is the msg of a summary line.
const summaryMessage = "denied requests suppressed"

// appendSummaryLine appends the console line of a summary: the audit line
// of ev, the last request left out, with msg summaryMessage and the time
// t, followed by suppressed=<n>. It is what slog.TextHandler prints for
// that record.
func appendSummaryLine(b []byte, t time.Time, ev *AuditEvent, n uint64) []byte {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, nil)
	r := slog.NewRecord(t, slog.LevelInfo, summaryMessage, 0)
	r.AddAttrs(
		Request(ev.Method, ev.Path, ev.IP, ev.Identity),
		slog.GroupAttrs("res", slog.Int("code", ev.Status), slog.Duration("time", ev.Duration)),
		slog.Uint64("suppressed", n),
	)
	h.Handle(context.Background(), r) //nolint:errcheck // a bytes.Buffer does not fail
	return append(b, buf.Bytes()...)
}

// summaryEvent returns the stream event of a summary: the stream event of
// ev, the last request left out, at time t, with "suppressed":n added. A
// client that decodes audit events reads it as that request.
func summaryEvent(t time.Time, ev *AuditEvent, n uint64) []byte {
	e := *ev
	e.Time = t
	b := auditEvent(&e)
	if b == nil {
		return nil
	}
	// b ends in "}}\n": insert the count into the outer object.
	tail, _ := json.Marshal(n)
	out := make([]byte, 0, len(b)+len(`,"suppressed":`)+len(tail))
	out = append(out, b[:len(b)-2]...)
	out = append(out, `,"suppressed":`...)
	out = append(out, tail...)
	return append(out, "}\n"...)
}
