package api

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// offlineLogInterval is how often, at most, the error log gets a line for
// requests refused because the key store is known to be offline.
const offlineLogInterval = time.Second

// offlineLog thins out the error lines of fail-fast answers. While the
// store is down every request that needs it fails within microseconds, so
// under MinIO's load one line per request would be thousands of identical
// lines a second, each a syscall; upstream, whose requests wait seconds
// for the store, writes one per request. The first refusal is logged at
// once, then at most one line per interval, which says how many were left
// out since the last. Lock-free: the request path only does atomics.
type offlineLog struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Int64 // refusals not logged since the last line
	now        func() time.Time
}

// log writes msg with attrs unless a line was written less than the
// interval ago, in which case it only counts it.
func (l *offlineLog) log(logger *slog.Logger, msg string, attrs ...any) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	t := now().UnixNano()
	last := l.last.Load()
	if last != 0 && t-last < int64(offlineLogInterval) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	logger.Error(msg, attrs...)
}
