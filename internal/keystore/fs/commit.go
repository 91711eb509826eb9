package fs

import (
	"context"
	"sync"
)

// syncGroup lets concurrent writers share one directory fsync (group
// commit). A writer that has linked, renamed or removed a name calls wait;
// wait returns once a sync that started after the call has finished, so the
// change is durable when wait returns nil. At most one sync runs at a time;
// the writer that finds none running becomes its leader and runs it in its
// own goroutine, for every writer that arrived before it started. Writers
// that arrive while it runs wait for it to end and then elect the next
// leader among themselves, so one sync covers all of them. No goroutine is
// started.
//
// The zero value is ready to use.
type syncGroup struct {
	mu       sync.Mutex
	started  uint64        // number of syncs begun
	finished uint64        // number of the last sync that ended
	err      error         // its result
	running  chan struct{} // closed when the sync in progress ends; nil if none runs
}

// wait returns once a call of sync that started after wait was called has
// ended, with that call's error, or earlier with ctx's error if ctx ends
// first. The change the caller made before calling wait is then durable
// only if some later sync (of any writer) succeeds before a crash. The
// leader runs sync even if its ctx has ended: fsync cannot be interrupted.
func (g *syncGroup) wait(ctx context.Context, sync func() error) error {
	g.mu.Lock()
	need := g.started + 1 // the first sync that starts from now on
	for {
		if g.finished >= need {
			err := g.err
			g.mu.Unlock()
			return err
		}
		if g.running == nil {
			g.started++
			n, done := g.started, make(chan struct{})
			g.running = done
			g.mu.Unlock()
			err := sync()
			g.mu.Lock()
			g.finished, g.err, g.running = n, err, nil
			g.mu.Unlock()
			close(done)
			return err
		}
		done := g.running
		g.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
}
