package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// envSoak sets the duration of TestSoak: scripts/test.sh (and so CI) sets
// 60s; a release runs 30m (README). Unset, the test runs a short soak.
const envSoak = "OPENKES_SOAK"

// TestSoak drives the MinIO-like mixed load against the built server and
// checks that no request failed, the server's goroutines and file
// descriptors returned to their idle counts, and its RSS stayed flat from
// the first half of the run to the second (issue 11).
func TestSoak(t *testing.T) {
	d := 15 * time.Second
	if v := os.Getenv(envSoak); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("%s=%q: %v", envSoak, v, err)
		}
	}
	rep, err := Soak(t.Context(), SoakOptions{KES: buildKES(t), Dir: t.TempDir(), Duration: d, Rate: 300})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if err := rep.Check(); err != nil {
		t.Error(err)
	}
}

// TestSoakCheck: the judgement of a soak report, on made-up figures.
func TestSoakCheck(t *testing.T) {
	samples := func(mibs ...float64) []SoakSample {
		var s []SoakSample
		for i, m := range mibs {
			s = append(s, SoakSample{At: time.Duration(i+1) * time.Second, Measure: Measure{RSS: int64(m * (1 << 20))}})
		}
		return s
	}
	good := func() *SoakReport {
		r := &SoakReport{
			Elapsed: 10 * time.Second, Warmup: 2 * time.Second,
			Idle:  Measure{FDs: 10, Goroutines: 10},
			After: Measure{FDs: 10, Goroutines: 12},
			// The warm-up's growth (20 → 38) does not count.
			Samples: samples(20, 30, 38, 38, 38, 38, 39, 39, 39),
		}
		for op := range r.Requests {
			r.Requests[op] = 10
		}
		return r
	}
	if err := good().Check(); err != nil {
		t.Fatalf("a good run: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*SoakReport)
		want   string
	}{
		"errors":        {func(r *SoakReport) { r.Errors, r.ErrorMessages = 2, []string{"status 502"} }, "2 of 60 requests failed, first: status 502"},
		"no list":       {func(r *SoakReport) { r.Requests[SoakList] = 0 }, "no list request"},
		"goroutines":    {func(r *SoakReport) { r.After.Goroutines = 16 }, "goroutines: 16 after the load, 10 idle"},
		"fds":           {func(r *SoakReport) { r.After.FDs = 11 }, "file descriptors: 11 after the load, 10 idle"},
		"rss growth":    {func(r *SoakReport) { r.Samples = samples(20, 30, 38, 38, 38, 38, 44, 44, 44) }, "RSS grew: median 44.0 MiB"},
		"no rss sample": {func(r *SoakReport) { r.Samples = nil }, "too few RSS samples"},
	} {
		t.Run(name, func(t *testing.T) {
			r := good()
			tc.change(r)
			if err := r.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestParseGauge reads a gauge from a Prometheus text exposition.
func TestParseGauge(t *testing.T) {
	text := []byte("# HELP kes_system_num_threads goroutines\n# TYPE kes_system_num_threads gauge\nkes_system_num_threads_x 3\nkes_system_num_threads 17\n")
	if n, err := parseGauge(text, "kes_system_num_threads"); err != nil || n != 17 {
		t.Errorf("parseGauge = %d, %v; want 17", n, err)
	}
	if _, err := parseGauge([]byte("other 1\n"), "kes_system_num_threads"); err == nil {
		t.Error("parseGauge of a missing metric: no error")
	}
}
