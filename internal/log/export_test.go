package log

// SetQueueLimit sets the bytes s queues before it drops events or makes
// callers wait, so that tests fill the queue with a few events. Call it
// before the first event.
func SetQueueLimit(s *Sink, n int) { s.limit = n }

// The tests of both packages share these helpers.
var (
	RunWriters     = runWriters
	CheckSequences = checkSequences
	MustSubscribe  = subscribe
)
