package log

import (
	"io"
	"sync"
)

const (
	// maxPending bounds the bytes of lines waiting for a write in progress
	// (unless a single line is longer). A caller that would pass it waits
	// until the pending lines are taken for writing. At about 200 bytes a
	// line it holds over a thousand lines, far more than the requests a
	// server answers during one write to its console.
	maxPending = 256 << 10

	// maxLeadRounds is how many batches of other callers' lines a caller
	// writes before the next caller to arrive takes the job over, so that
	// no request is delayed by more than a few writes.
	maxLeadRounds = 4

	// maxKeptBuffer is the largest batch buffer kept for reuse. The two
	// batch buffers (pending and the one being written) are kept up to
	// twice maxPending, so that a writer under constant load does not
	// allocate; a batch grown past that by a huge line is dropped.
	maxKeptBuffer = 2 * maxPending
)

// lineWriter writes lines from concurrent callers to w in as few Write calls
// as it can, without a goroutine of its own. A caller that finds w idle
// writes its line at once, with no added latency. A caller that finds a
// write in progress appends its line to a pending batch and returns; the
// caller doing the write (the leader) writes the batch when its write is
// done, and again until no batch is left. After maxLeadRounds batches the
// next caller to arrive waits for the write in progress and takes the lead
// over, so that each caller writes a bounded number of batches.
//
// Nothing is dropped: while the pending batch holds maxPending bytes, callers
// wait for it to be written (backpressure). Lines are written whole and in
// the order their write calls took the lock, so the lines of one goroutine
// keep their order. Write errors are ignored, as an audit line that cannot be
// printed must not fail a request.
//
// Its zero value is not usable; set w. It is safe for concurrent use.
type lineWriter struct {
	w     io.Writer
	limit int // of len(pending) before callers wait; at least one line is taken

	mu        sync.Mutex
	cond      sync.Cond // on mu: broadcast when pending is taken, the lead passes or writing ends
	writing   bool      // a leader is writing or about to write pending
	rounds    int       // batches written by the current leader
	successor bool      // a caller waits to take the lead over
	pending   []byte    // lines for the leader to write, in order
	spare     []byte    // an empty buffer to take pending's place
}

// newLineWriter returns a lineWriter writing to w.
func newLineWriter(w io.Writer) *lineWriter {
	lw := &lineWriter{w: w, limit: maxPending}
	lw.cond.L = &lw.mu
	return lw
}

// write writes line, which must be one or more whole lines, to the
// underlying writer, or hands it to the caller writing now. line is not
// retained. When write returns, line has been written or will be written by
// a caller that is inside write.
func (lw *lineWriter) write(line []byte) {
	lw.mu.Lock()
	for lw.writing && len(lw.pending) > 0 && len(lw.pending)+len(line) > lw.limit {
		lw.cond.Wait()
	}
	if !lw.writing {
		lw.writing, lw.rounds = true, 0
		lw.mu.Unlock()
		lw.w.Write(line) //nolint:errcheck // see the type's doc
		lw.mu.Lock()
		lw.lead()
		return
	}
	lw.pending = append(lw.pending, line...)
	if lw.rounds < maxLeadRounds || lw.successor {
		lw.mu.Unlock()
		return
	}
	// The leader has written enough for others: take over when its
	// current write is done.
	lw.successor = true
	for lw.successor {
		lw.cond.Wait()
	}
	lw.lead()
}

// lead writes pending batches until none is left or a successor waits. It
// is called with lw.mu held and lw.writing set by the leader, and returns
// with lw.mu released.
func (lw *lineWriter) lead() {
	for len(lw.pending) > 0 {
		if lw.successor {
			// pending is not empty: it holds at least the successor's line.
			// Resetting rounds here, not in the successor, keeps a caller
			// arriving before the successor wakes from waiting to lead too:
			// only one caller waits for the lead at a time.
			lw.successor, lw.rounds = false, 0
			lw.cond.Broadcast()
			lw.mu.Unlock()
			return
		}
		batch := lw.pending
		lw.pending, lw.spare = lw.spare[:0], nil
		lw.rounds++
		lw.cond.Broadcast() // room in pending
		lw.mu.Unlock()
		lw.w.Write(batch) //nolint:errcheck // see the type's doc
		lw.mu.Lock()
		if cap(batch) <= maxKeptBuffer {
			lw.spare = batch[:0]
		}
	}
	lw.writing = false
	lw.cond.Broadcast()
	lw.mu.Unlock()
}

// flush waits until every line passed to write before has been written.
func (lw *lineWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for lw.writing {
		lw.cond.Wait()
	}
}
