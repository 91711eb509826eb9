package log

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// SubscriberBuffer is the number of events a [Subscription] holds before
// further events for it are dropped. It bounds the memory a slow or stalled
// stream client can pin.
const SubscriberBuffer = 256

// hub fans events out to subscribers without ever blocking the publisher.
// Its zero value has no subscribers and is ready to use.
type hub struct {
	n    atomic.Int64 // len(subs), read without the lock on the hot path
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// active reports whether anyone is subscribed. Publishers check it before
// encoding an event, so that logging with no subscriber does no JSON work.
func (h *hub) active() bool { return h.n.Load() > 0 }

// subscribe registers a new subscription with a buffer of SubscriberBuffer
// events.
func (h *hub) subscribe() *Subscription {
	s := &Subscription{hub: h, ch: make(chan []byte, SubscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[*Subscription]struct{})
	}
	h.subs[s] = struct{}{}
	h.n.Store(int64(len(h.subs)))
	return s
}

// publish offers event to every subscriber. A subscriber whose buffer is
// full loses the event and its drop counter grows; publish never waits.
// event is shared by all subscribers and must not be modified afterwards.
func (h *hub) publish(event []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- event:
		default:
			s.dropped.Add(1)
		}
	}
}

// unsubscribe removes s and closes its channel. Calling it twice is a no-op.
func (h *hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	h.n.Store(int64(len(h.subs)))
	close(s.ch)
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
	dropped atomic.Uint64
}

// Events returns the channel the events arrive on. It is closed by
// [Subscription.Close]. The received slices are shared with other
// subscribers and must not be modified.
func (s *Subscription) Events() <-chan []byte { return s.ch }

// Dropped returns how many events were discarded because the buffer of s
// was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes s and closes its events channel. Events still buffered
// can be drained from the channel. Close may be called more than once.
func (s *Subscription) Close() { s.hub.unsubscribe(s) }

// Stream writes every event of s to w until ctx is done, s is closed or a
// write fails. After each event it calls flush, if not nil, so that the
// client sees the event at once (pass http.ResponseController.Flush for an
// HTTP response). It returns nil when s was closed, ctx.Err() when ctx is
// done, and otherwise the write or flush error. Stream does not close s.
func (s *Subscription) Stream(ctx context.Context, w io.Writer, flush func() error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case event, ok := <-s.ch:
			if !ok {
				return nil
			}
			if _, err := w.Write(event); err != nil {
				return err
			}
			if flush != nil {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}
