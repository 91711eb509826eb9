//go:build race

package log

// raceEnabled reports whether the race detector is on. It makes sync.Pool
// drop items at random, so slog's buffer pool may allocate.
const raceEnabled = true
