package log

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SubscriberBuffer is the number of events a [Subscription] holds before
// further events for it are dropped. It bounds the memory a slow or stalled
// stream client can pin.
//
// It holds the events of a busy server's [StreamDelay]: 20,000 a second.
const SubscriberBuffer = 1024

// MaxSubscribers is how many subscriptions one log (the error log or the
// audit log) serves at a time. Publishing an event costs a little for each
// subscriber that keeps up, on the goroutine that logs it, and writing it
// out costs each stream more, so the cap bounds what live streams can take
// from the requests being served; a [Subscribe] past it fails with
// [ErrTooManySubscribers]. Operators watch a log with a handful of
// streams.
//
// [Subscribe]: AuditLog.Subscribe
const MaxSubscribers = 64

var (
	// ErrTooManySubscribers is returned by Subscribe while a log has
	// [MaxSubscribers] subscriptions.
	ErrTooManySubscribers = errors.New("log: too many subscribers")

	// ErrClosed is returned by Subscribe after the log was closed.
	ErrClosed = errors.New("log: closed")
)

// hub fans events out to subscribers without ever blocking the publisher.
// Its zero value has no subscribers and is ready to use.
//
// Publishing takes no lock shared with other publishers: the subscribers
// are a copy-on-write snapshot behind an atomic pointer, which only
// subscribing, unsubscribing, parking and unparking (under mu) replace, and
// each event is offered to each subscriber's own bounded channel without
// waiting.
//
// A subscription read by [Subscription.Stream] whose buffer is full is
// parked: taken out of the snapshot, so that a client that stopped reading
// costs the publishers nothing, until Stream has written its buffer out.
// The events published meanwhile count as dropped.
type hub struct {
	subs atomic.Pointer[snapshot] // nil when nobody is subscribed
	seq  atomic.Uint64            // events published, for the drops of parked subscriptions

	mu      sync.Mutex // serializes the writers of subs, closed and retired
	all     []*Subscription
	closed  bool
	retired uint64 // events dropped by subscriptions already closed
}

// snapshot is what publishers see of the subscriptions. It is never
// modified once stored.
type snapshot struct {
	offer []*Subscription // the subscriptions not parked
}

// active reports whether anyone is subscribed. Publishers check it before
// encoding an event, so that logging with no subscriber does no JSON work.
func (h *hub) active() bool { return h.subs.Load() != nil }

// store publishes a new snapshot of h.all. h.mu must be held.
func (h *hub) store() {
	if len(h.all) == 0 {
		h.subs.Store(nil)
		return
	}
	snap := &snapshot{offer: make([]*Subscription, 0, len(h.all))}
	for _, s := range h.all {
		if !s.parked.Load() {
			snap.offer = append(snap.offer, s)
		}
	}
	h.subs.Store(snap)
}

// subscribe registers a new subscription with a buffer of SubscriberBuffer
// events, unless the hub is closed or full.
func (h *hub) subscribe() (*Subscription, error) {
	s := &Subscription{hub: h, ch: make(chan []byte, SubscriberBuffer), wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if len(h.all) >= MaxSubscribers {
		return nil, ErrTooManySubscribers
	}
	h.all = append(h.all, s)
	h.store()
	return s, nil
}

// publish offers event to every subscriber. A subscriber whose buffer is
// full loses the event and its drop counter grows; publish never waits.
// event is shared by all subscribers and must not be modified afterwards.
func (h *hub) publish(event []byte) {
	h.seq.Add(1)
	snap := h.subs.Load()
	if snap == nil {
		return
	}
	for _, s := range snap.offer {
		s.offer(event)
	}
}

// park takes s out of the snapshot, if it is still subscribed, and wakes
// its Stream.
func (h *hub) park(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.parked.Load() || !slices.Contains(h.all, s) {
		return
	}
	s.parkedAt.Store(h.seq.Load())
	s.parked.Store(true)
	h.store()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// unpark puts s back into the snapshot and counts the events published
// while it was parked as dropped.
func (h *hub) unpark(s *Subscription) {
	if !s.parked.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !s.parked.Load() {
		return
	}
	s.dropped.Add(h.seq.Load() - s.parkedAt.Load())
	s.parked.Store(false)
	if slices.Contains(h.all, s) {
		h.store()
	}
}

// unsubscribe removes s and closes its channel. Calling it twice is a no-op.
func (h *hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := slices.Index(h.all, s)
	if i < 0 {
		return // not subscribed (any more)
	}
	h.all = slices.Delete(h.all, i, i+1)
	h.store()
	h.retire(s)
}

// retire closes s, which is no longer in any new snapshot, and keeps its
// drop count. h.mu must be held.
func (h *hub) retire(s *Subscription) {
	s.close()
	h.retired += s.Dropped()
}

// close ends every subscription and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	all := h.all
	h.all = nil
	h.store()
	for _, s := range all {
		h.retire(s)
	}
}

// dropped returns the events dropped so far for all subscriptions, closed
// ones included.
func (h *hub) dropped() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.retired
	for _, s := range h.all {
		n += s.Dropped()
	}
	return n
}

// Subscription receives the events of an [ErrorLog] or [AuditLog] that are
// logged after it was created, each one complete line of newline-terminated
// JSON as sent on /v1/log/error and /v1/log/audit.
//
// Delivery never slows down logging: a subscription buffers up to
// [SubscriberBuffer] events, and while its buffer is full new events for it
// are dropped and counted by [Subscription.Dropped]. Other subscribers are
// not affected.
//
// A Subscription owns no goroutine. [Subscription.Close] must be called when
// the client goes away; it unregisters the subscription, closes the events
// channel and so releases every buffered event. All methods are safe for
// concurrent use.
type Subscription struct {
	hub     *hub
	ch      chan []byte
	dropped atomic.Uint64 // not counting the events missed while parked

	// streamed is set by Stream: only such subscriptions are parked,
	// since only Stream unparks them.
	streamed atomic.Bool
	parked   atomic.Bool
	parkedAt atomic.Uint64 // hub.seq when parked
	wake     chan struct{} // signals Stream that s was parked

	// mu guards sending on ch against closing it: publishers hold it for
	// reading, each only for its one non-blocking send, and close holds it
	// for writing. A publisher that finds it locked skips the
	// subscription, which is being closed.
	mu     sync.RWMutex
	closed bool
}

// offer sends event to s unless its buffer is full or s is being closed.
func (s *Subscription) offer(event []byte) {
	if !s.mu.TryRLock() {
		return // being closed
	}
	full := false
	if !s.closed {
		select {
		case s.ch <- event:
		default:
			full = true
			s.dropped.Add(1)
		}
	}
	s.mu.RUnlock()
	// Not under s.mu: unsubscribe holds hub.mu while it closes s.
	if full && s.streamed.Load() {
		s.hub.park(s)
	}
}

// close closes the events channel once no publisher is sending.
func (s *Subscription) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Events returns the channel the events arrive on. It is closed by
// [Subscription.Close] or when the log is closed. The received slices are
// shared with other subscribers and must not be modified.
func (s *Subscription) Events() <-chan []byte { return s.ch }

// Dropped returns how many events were discarded because the buffer of s
// was full. While Stream writes to a client that does not keep up, the
// count may be off by the few events logged at the moment its buffer filled
// or emptied.
func (s *Subscription) Dropped() uint64 {
	n := s.dropped.Load()
	if s.parked.Load() {
		n += s.hub.seq.Load() - s.parkedAt.Load()
	}
	return n
}

// Close unsubscribes s and closes its events channel. Events still buffered
// can be drained from the channel. Close may be called more than once.
func (s *Subscription) Close() { s.hub.unsubscribe(s) }

// StreamDelay is how long [Subscription.Stream] lets events gather after
// the first one arrives before it writes them out with one flush. A stream
// then costs its server one wakeup and one network write per StreamDelay
// at most, however busy the server is, instead of one per event per
// subscriber, which under load took most of the CPU from the requests
// themselves. An event reaches the client StreamDelay late at most.
const StreamDelay = 50 * time.Millisecond

// Stream writes every event of s to w until ctx is done, s is closed or a
// write fails. When an event arrives it waits [StreamDelay], then writes
// the events that are waiting and calls flush, if not nil, so that the
// client sees them (pass http.ResponseController.Flush for an HTTP
// response). It returns nil when s was closed, ctx.Err() when ctx is done,
// and otherwise the write or flush error. Stream does not close s.
func (s *Subscription) Stream(ctx context.Context, w io.Writer, flush func() error) error {
	s.streamed.Store(true)
	delay := time.NewTimer(StreamDelay)
	defer delay.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
			// Parked after the buffer was last written out. If it is
			// empty now, nothing else would unpark s; if not, the
			// write below does.
			if len(s.ch) == 0 {
				s.hub.unpark(s)
			}
			continue
		case event, ok := <-s.ch:
			if !ok {
				return nil
			}
			if _, err := w.Write(event); err != nil {
				return err
			}
		}
		delay.Reset(StreamDelay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-delay.C:
		}
		open, err := s.writeWaiting(w)
		if err != nil {
			return err
		}
		s.hub.unpark(s) // the buffer is empty
		if flush != nil {
			if err := flush(); err != nil {
				return err
			}
		}
		if !open {
			return nil
		}
	}
}

// writeWaiting writes the events waiting in s, at most SubscriberBuffer of
// them. It reports whether s is still open.
func (s *Subscription) writeWaiting(w io.Writer) (open bool, err error) {
	for range SubscriberBuffer {
		select {
		case event, ok := <-s.ch:
			if !ok {
				return false, nil
			}
			if _, err := w.Write(event); err != nil {
				return true, err
			}
		default:
			return true, nil
		}
	}
	return true, nil
}
