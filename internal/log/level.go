package log

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// LevelOff is the level that "off" stands for: above ERROR, so that no
// record of the server passes it.
const LevelOff = slog.LevelError + 1

// ErrInvalidLevel is returned (wrapped) by [ParseLevel] for a value that is
// not a level.
var ErrInvalidLevel = errors.New("log: invalid level")

// ParseLevel parses a log.error or log.audit config value (config.md §8),
// case-insensitively and ignoring surrounding spaces: "" and "on" are INFO, "off" is [LevelOff], DEBUG, INFO,
// WARN and ERROR are the slog levels, optionally followed by an offset
// ("ERROR+1", "info-2"), and an integer is taken as a slog level as is.
// Any other value yields an error that matches [ErrInvalidLevel].
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "on":
		return slog.LevelInfo, nil
	case "off":
		return LevelOff, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return slog.Level(n), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w %q", ErrInvalidLevel, s)
	}
	return l, nil
}
