//go:build !race

package log

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
