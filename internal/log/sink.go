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
)

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
// server that is gone or stalled must never stall the API. Events a sink
// cannot deliver (a failed file write, a syslog server unreachable until
// shutdown) are counted too, and reported in the error log at most every
// 10 s.
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

	mu     sync.Mutex
	cond   sync.Cond // on mu: broadcast when the writer takes the queue or stops
	queue  []byte
	closed bool

	kick   chan struct{} // cap 1: wakes the writer early
	stop   chan struct{} // closed by Close: drain and end
	done   chan struct{} // closed when the writer has ended
	ctx    context.Context
	cancel context.CancelFunc // aborts the writer's I/O when Close's deadline passes

	dropped  atomic.Uint64
	lastWarn time.Time // of the writer goroutine
	failing  bool      // of the writer goroutine: the last write failed
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
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.cond.L = &s.mu
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Name returns "file" or "syslog".
func (s *Sink) Name() string { return s.name }

// Dropped returns how many events the sink has lost, over its life: not
// queued because the queue was full (syslog) or the sink closed, or not
// delivered because a write failed.
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
	for s.block && !s.closed && len(s.queue) > 0 && len(s.queue)+len(rec) > s.limit {
		s.cond.Wait()
	}
	if s.closed || len(s.queue) > 0 && len(s.queue)+len(rec) > s.limit {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.queue = append(s.queue, rec...)
	full := len(s.queue) >= batchSize
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// take returns the queued records, leaving an empty queue, and wakes the
// callers waiting for room.
func (s *Sink) take(spare []byte) []byte {
	s.mu.Lock()
	b := s.queue
	s.queue = spare[:0]
	s.cond.Broadcast()
	s.mu.Unlock()
	return b
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
		batch := s.take(spare)
		if len(batch) > 0 {
			s.deliver(batch)
		}
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
				if n := s.countRecords(s.take(nil)); n > 0 {
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

// warn logs a failure of the sink, at most every warnInterval.
func (s *Sink) warn(msg string, err error) {
	now := time.Now()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < warnInterval {
		return
	}
	s.lastWarn = now
	s.errLog.Error(msg, "sink", s.name, "err", err, "dropped", s.dropped.Load())
}

// Close writes the queued events and stops the writer goroutine. It waits
// at most until ctx is done: then the writer's I/O is aborted, the events
// not written are counted as dropped, and Close returns an error saying
// how many. Events offered after Close are dropped. Close may be called
// more than once; later calls wait for the first to finish.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	before := s.dropped.Load()
	if first {
		close(s.stop)
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	s.cancel()
	if n := s.dropped.Load() - before; first && n > 0 {
		return fmt.Errorf("log: audit %s sink: %d events not delivered at shutdown", s.name, n)
	}
	return nil
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
