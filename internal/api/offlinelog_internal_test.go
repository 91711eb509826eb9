package api

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestOfflineLogInterval: the first refusal is logged, then at most one a
// second, and each later line counts the refusals left out before it.
func TestOfflineLogInterval(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	l := &offlineLog{now: func() time.Time { return now }}
	step := func(d time.Duration, n int) {
		for range n {
			l.log(logger, "cache: key store is offline")
			now = now.Add(d)
		}
	}
	step(time.Millisecond, 500)   // 0.5 s: 1 line, 499 left out
	step(10*time.Millisecond, 60) // to 1.1 s: 1 line at 1 s (499+50 left out before it), 9 left out
	now = now.Add(3 * time.Second)
	step(0, 1) // 1 line, counting the 9 left out since the last
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"", "suppressed=549", "suppressed=9"} {
		if want == "" {
			if strings.Contains(lines[i], "suppressed") {
				t.Errorf("line %d: %s; want no count", i, lines[i])
			}
			continue
		}
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d: %s; want it to end with %s", i, lines[i], want)
		}
	}
}
