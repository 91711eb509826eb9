package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPairsSmoke runs the pairs mode briefly against two servers of the
// same binary and checks that every figure is positive and that the
// report names both.
func TestPairsSmoke(t *testing.T) {
	bin := buildKES(t)
	rep, err := Pairs(t.Context(), PairsOptions{KES: []string{bin, bin}, Dir: t.TempDir(), Clients: 4, Duration: 300 * time.Millisecond, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rep.Rows))
	}
	for _, row := range rep.Rows {
		if len(row.Samples) != 2 {
			t.Fatalf("%s: %d samples, want 2", row.Name, len(row.Samples))
		}
		for _, s := range row.Samples {
			if s.Pairs <= 0 || s.P50 <= 0 || s.P99 < s.P50 || s.CPU <= 0 {
				t.Errorf("%s: implausible sample %+v", row.Name, s)
			}
		}
	}
	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kes-0") || !strings.Contains(out.String(), "kes-1") {
		t.Fatalf("report names not both servers:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}

// TestPairsRetention checks that -retention reaches the servers' config:
// with the default, every deleted key leaves a tombstone in the store;
// with "0", none.
func TestPairsRetention(t *testing.T) {
	bin := buildKES(t)
	for _, tc := range []struct {
		retention  string
		tombstones bool
	}{{"", true}, {"0", false}} {
		t.Run("retention="+tc.retention, func(t *testing.T) {
			dir := t.TempDir()
			rep, err := Pairs(t.Context(), PairsOptions{KES: []string{bin}, Dir: dir, Clients: 2, Duration: 200 * time.Millisecond, Rounds: 1, Retention: tc.retention})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows[0].Samples[0].Pairs == 0 {
				t.Fatal("no pairs")
			}
			entries, err := os.ReadDir(filepath.Join(dir, "kes-0-keys"))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "-d") {
					n++
				}
			}
			if got := n > 0; got != tc.tombstones {
				t.Fatalf("%d tombstones after %d pairs, want some: %v", n, rep.Rows[0].Samples[0].Pairs, tc.tombstones)
			}
		})
	}
}
