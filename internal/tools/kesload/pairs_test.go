package main

import (
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
