package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// FlushInterval is how long an audit event waits at most in a sink's
	// queue before its writer goroutine writes it.
	FlushInterval = 100 * time.Millisecond

	// batchSize is the queue length in bytes at which the writer is woken
	// before FlushInterval has passed, so that a busy server writes in
	// batches of about this size (some 300 events).
	batchSize = 64 << 10

	// maxQueue bounds the bytes of events waiting for a sink's writer
	// (unless a single event is longer): about 16,000 events, the traffic
	// of a busy server for most of a second. What happens when it is full
	// depends on the sink, see [Sink].
	maxQueue = 4 << 20

	// warnInterval is how often at most a sink reports failures to the
	// error log.
	warnInterval = 10 * time.Second

	// maxStall bounds back-pressure: how long a request waits for a file
	// sink's writer to make progress (take the queue) before its event is
	// dropped and the writer is deemed hung. Every take empties the whole
	// queue, so a waiting request gets in at the writer's next take: it
	// waits for the write of at most one full queue (4 MiB) and a
	// rotation. 5 s is lossless for a disk that sustains 1 MiB/s, far
	// slower than a slow disk or NFS mount under a burst, yet leaves half
	// of the shortest route timeout (10 s) to the request. A stuck mount
	// or frozen disk, which makes no progress at all, costs the API at
	// most this once, not per request (see [Sink]).
	maxStall = 5 * time.Second
)

// errStalled is reported in the error log when a file sink drops events
// because its writer is hung.
var errStalled = fmt.Errorf("log: audit sink: the writer made no progress for %v", maxStall)

// ErrSinkClosed is the error of events logged to a [Sink] after it was
// closed; they are counted as dropped.
var ErrSinkClosed = errors.New("log: audit sink closed")

// batchWriter is where a sink's writer goroutine writes: a rotating file
// or a syslog connection. Only the writer goroutine calls it.
type batchWriter interface {
	// write writes batch, whole records, and returns how many of its
	// bytes were written before an error, so that the rest can be tried
	// again; ctx ends when the sink is closed past its deadline.
	write(ctx context.Context, batch []byte) (int, error)
	// tick is called after every wake-up of the writer (at least every
	// FlushInterval), for time rotation.
	tick(now time.Time) error
	close() error
}

// Sink is an audit sink: a destination, besides the console and the live
// streams, that receives every audit event as a JSON line (the stream
// format of [AuditLog]). [NewFileSink] and [NewSyslogSink] create one;
// [NewAuditLog] takes it over, and [AuditLog.Shutdown] closes it.
//
// Logging an event only appends its record to the sink's queue, under a
// mutex held for a copy: a goroutine of the sink writes the queue in
// batches, when it holds 64 KiB or after [FlushInterval], so that a busy
// server makes a write call per few hundred events, not one per request.
//
// While the queue is full (4 MiB), a file sink makes the logging request
// wait for its writer (back-pressure: a working file loses nothing), and a
// syslog sink drops the event and counts it ([Sink.Dropped]): a syslog
// server that is gone or stalled must never stall the API. The file sink's
// wait is bounded too: a request whose writer makes no progress for 5 s (a
// write stuck on a dead mount or a frozen disk) drops its event, counts it
// and marks the writer hung; while it is hung, the file sink drops at once
// like the syslog sink, and it applies back-pressure again as soon as the
// writer takes the queue. Events a sink cannot deliver (a failed file
// write, a syslog server unreachable until shutdown) are counted too, and
// reported in the error log at most every 10 s.
//
// A Sink is safe for concurrent use.
type Sink struct {
	name   string
	block  bool                                            // back-pressure instead of dropping
	encode func(b []byte, t time.Time, json []byte) []byte // the record of an event at t; nil: json as is
	out    batchWriter
	errLog *slog.Logger
	now    func() time.Time
	limit  int // of len(queue); maxQueue but in tests

	mu       sync.Mutex
	queue    []byte
	writing  []byte        // the batch the writer has taken and not yet delivered
	gen      uint64        // counts the writer's takes: its progress
	lastTake time.Time     // of the last take
	room     chan struct{} // closed and replaced at every take and by Close: wakes the waiting callers
	hung     bool          // a caller waited maxStall without a take; cleared by the next take
	closed   bool

	kick   chan struct{} // cap 1: wakes the writer early
	stop   chan struct{} // closed by Close: drain and end
	done   chan struct{} // closed when the writer has ended
	ctx    context.Context
	cancel context.CancelFunc // aborts the writer's I/O when Close's deadline passes

	dropped  atomic.Uint64
	lastWarn atomic.Int64 // time.Now().UnixNano() of the last failure report
	failing  bool         // of the writer goroutine: the last write failed or the writer was hung
}

// newSink starts the writer goroutine of a sink writing to out.
func newSink(name string, block bool, out batchWriter, errLog *slog.Logger, now func() time.Time) *Sink {
	if errLog == nil {
		errLog = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	s := &Sink{
		name: name, block: block, out: out, errLog: errLog, now: now, limit: maxQueue,
		room: make(chan struct{}), lastTake: time.Now(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Name returns "file" or "syslog".
func (s *Sink) Name() string { return s.name }

// Dropped returns how many events the sink has lost, over its life: not
// queued because the queue was full (syslog) or the writer hung (file) or
// the sink closed, or not delivered because a write failed.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// record appends the record of an event at t, whose JSON line is json, to
// b.
func (s *Sink) record(b []byte, t time.Time, json []byte) []byte {
	if s.encode == nil {
		return append(b, json...)
	}
	return s.encode(b, t, json)
}

// offer queues rec, one or more whole records, for the writer. rec is not
// retained.
func (s *Sink) offer(rec []byte) {
	s.mu.Lock()
	if s.block && s.full(len(rec)) && !s.closed && !s.hung {
		s.waitRoom(len(rec))
	}
	if s.closed || s.full(len(rec)) {
		hung := s.hung
		s.mu.Unlock()
		s.dropped.Add(1)
		if hung {
			s.warn("audit sink: events lost", errStalled)
		}
		return
	}
	s.queue = append(s.queue, rec...)
	full := len(s.queue) >= batchSize
	s.mu.Unlock()
	if full {
		s.wakeWriter()
	}
}

// full reports whether a record of n bytes does not fit into the queue
// (one always fits into an empty queue). s.mu is held.
func (s *Sink) full(n int) bool { return len(s.queue) > 0 && len(s.queue)+n > s.limit }

// waitRoom waits, with s.mu held, until a record of n bytes fits into the
// queue, the sink is closed or the writer is hung: it marks it hung when
// it makes no progress for maxStall, and wakes the other waiting callers
// so that they drop their events at once too.
func (s *Sink) waitRoom(n int) {
	gen := s.gen
	t := time.NewTimer(maxStall)
	defer t.Stop()
	for s.full(n) && !s.closed && !s.hung {
		room := s.room
		s.mu.Unlock()
		s.wakeWriter() // so that it takes the queue as soon as it can
		select {
		case <-room:
			s.mu.Lock()
		case <-t.C:
			s.mu.Lock()
			if s.gen == gen {
				s.hung = true
				s.wakeCallers()
				return
			}
		}
		if s.gen != gen {
			gen = s.gen
			t.Reset(maxStall)
		}
	}
}

// wakeCallers wakes the callers waiting for room. s.mu is held.
func (s *Sink) wakeCallers() {
	close(s.room)
	s.room = make(chan struct{})
}

// wakeWriter wakes the writer goroutine if it waits for the next
// FlushInterval.
func (s *Sink) wakeWriter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// take returns the queued records, leaving an empty queue, and wakes the
// callers waiting for room. It reports whether the writer was hung.
func (s *Sink) take(spare []byte) (batch []byte, wasHung bool) {
	s.mu.Lock()
	batch, s.writing = s.queue, s.queue
	s.queue = spare[:0]
	s.gen++
	s.lastTake = time.Now()
	wasHung, s.hung = s.hung, false
	s.wakeCallers()
	s.mu.Unlock()
	return batch, wasHung
}

// delivered records that the writer is done with the batch it took.
func (s *Sink) delivered() {
	s.mu.Lock()
	s.writing = nil
	s.mu.Unlock()
}

// run is the writer goroutine: it writes the queue at every wake-up, and
// after Close until the queue is empty.
func (s *Sink) run() {
	defer close(s.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	var spare []byte
	stopping := false
	for {
		if !stopping {
			select {
			case <-s.kick:
			case <-t.C:
			case <-s.stop:
				stopping = true
			}
		}
		batch, wasHung := s.take(spare)
		if wasHung {
			s.failing = true // "delivering again" once this batch is written
		}
		if len(batch) > 0 {
			s.deliver(batch)
		}
		s.delivered()
		if err := s.out.tick(s.now()); err != nil {
			s.warn("audit sink: rotation failed", err)
		}
		if cap(batch) <= 2*maxQueue {
			spare = batch[:0]
		}
		if stopping {
			s.mu.Lock()
			empty := len(s.queue) == 0
			s.mu.Unlock()
			if empty || s.ctx.Err() != nil {
				rest, _ := s.take(nil)
				s.delivered()
				if n := s.countRecords(rest); n > 0 {
					s.dropped.Add(uint64(n))
				}
				if err := s.out.close(); err != nil {
					s.warn("audit sink: close failed", err)
				}
				return
			}
		}
	}
}

// deliver writes batch, retrying the part not written while the writer
// reports progress or asks to retry, until the sink's context ends.
func (s *Sink) deliver(batch []byte) {
	for len(batch) > 0 {
		n, err := s.out.write(s.ctx, batch)
		batch = batch[n:]
		if err == nil {
			if s.failing {
				s.failing = false
				s.errLog.Info("audit sink: delivering again", "sink", s.name, "dropped", s.dropped.Load())
			}
			return
		}
		s.failing = true
		var retry *retryError
		if !errors.As(err, &retry) || s.ctx.Err() != nil {
			lost := s.countRecords(batch)
			s.dropped.Add(uint64(lost))
			s.warn("audit sink: events lost", err)
			return
		}
		s.warn("audit sink: write failed, retrying", retry.err)
	}
}

// countRecords returns the number of records in b.
func (s *Sink) countRecords(b []byte) int {
	if s.encode == nil {
		return countLines(b)
	}
	return countFrames(b)
}

// warn logs a failure of the sink, at most every warnInterval (one limit
// for the writer goroutine and the callers that drop).
func (s *Sink) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if last != 0 && now-last < int64(warnInterval) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.errLog.Error(msg, "sink", s.name, "err", err, "dropped", s.dropped.Load())
}

// Close writes the queued events and stops the writer goroutine. It waits
// until ctx is done or the writer has made no progress for 5 s (a write
// that hangs): then the writer's I/O is aborted, the events not written
// are counted as dropped, and Close returns an error saying how many.
//
// A file write cannot be aborted. Close waits for the one in progress
// until the writer has made no progress for 5 s (at least [FlushInterval]
// after the abort); then it drops the queued events and returns, leaving
// the writer goroutine blocked in the write, since nothing can end a write
// to a dead mount; the error says so. The goroutine ends if the write ever
// returns.
//
// Events offered after Close are dropped. Close may be called more than
// once; later calls wait for the first to finish, as long.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.wakeCallers()
	s.mu.Unlock()
	before := s.dropped.Load()
	if first {
		close(s.stop)
	}
	ended := s.await(ctx.Done(), 0)
	s.cancel()
	if !ended {
		ended = s.await(nil, FlushInterval) // time for an aborted write to return
	}
	if !first {
		return nil
	}
	if !ended {
		return s.abandon()
	}
	if n := s.dropped.Load() - before; n > 0 {
		return fmt.Errorf("log: audit %s sink: %d events not delivered at shutdown", s.name, n)
	}
	return nil
}

// await waits for the writer goroutine to end, and reports whether it
// did. It stops waiting when abort is closed, or when the writer has made
// no progress (taken the queue) for maxStall, but waits at least least.
func (s *Sink) await(abort <-chan struct{}, least time.Duration) bool {
	t := time.NewTimer(least)
	defer t.Stop()
	for {
		s.mu.Lock()
		room, last := s.room, s.lastTake
		s.mu.Unlock()
		t.Reset(max(maxStall-time.Since(last), least))
		select {
		case <-s.done:
			return true
		case <-room:
		case <-abort:
			return false
		case <-t.C:
			return false
		}
	}
}

// abandon gives up on a writer that does not end: it drops the queued
// events and returns the error of Close.
func (s *Sink) abandon() error {
	s.mu.Lock()
	queued := s.countRecords(s.queue)
	writing := s.countRecords(s.writing)
	s.queue = nil
	s.mu.Unlock()
	s.dropped.Add(uint64(queued))
	return fmt.Errorf("log: audit %s sink: %d events not delivered at shutdown, %d more in a write that has not returned: %w",
		s.name, queued, writing, errStalled)
}

// retryError marks a write error after which the batch writer can try
// again (a syslog connection to be dialed anew); any other error loses the
// rest of the batch.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// countLines returns the number of newline-terminated lines in b.
func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
