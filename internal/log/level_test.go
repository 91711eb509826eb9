package log_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/openkes/kes/internal/log"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"", slog.LevelInfo},
		{"on", slog.LevelInfo},
		{"ON", slog.LevelInfo},
		{"off", slog.LevelError + 1},
		{"Off", slog.LevelError + 1},
		{"DEBUG", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"Warn", slog.LevelWarn},
		{"ERROR", slog.LevelError},
		{"ERROR+1", slog.LevelError + 1},
		{"info-2", slog.LevelInfo - 2},
		{" WARN ", slog.LevelWarn},
		{"12", 12},
		{"-4", slog.LevelDebug},
		{"+1", slog.LevelInfo + 1},
	}
	for _, tt := range tests {
		got, err := log.ParseLevel(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseLevelInvalid(t *testing.T) {
	for _, in := range []string{"yes", "true", "WARNING", "ERROR+", "1.5", "on+1"} {
		if l, err := log.ParseLevel(in); !errors.Is(err, log.ErrInvalidLevel) {
			t.Errorf("ParseLevel(%q) = %v, %v; want error %v", in, l, err, log.ErrInvalidLevel)
		}
	}
}
