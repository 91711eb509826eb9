package kes_test

import (
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
)

func TestMetrics(t *testing.T) {
	exposition, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var accept string
	srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/metrics" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
		w.Write(exposition)
	}))
	c, _ := newTestClient(t, srv)
	m, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(accept, "text/plain") {
		t.Errorf("Accept %q, want the text format", accept)
	}
	want := &kes.Metrics{
		RequestOK: 1234, RequestErr: 12, RequestFail: 1, RequestActive: 1,
		AuditEvents: 12, ErrorEvents: 0,
		LatencyHistogram: map[time.Duration]uint64{
			10 * time.Millisecond: 1200, 50 * time.Millisecond: 1230, 100 * time.Millisecond: 1240,
			250 * time.Millisecond: 1245, 500 * time.Millisecond: 1246, time.Second: 1246,
			1500 * time.Millisecond: 1247, 3 * time.Second: 1247, 5 * time.Second: 1247, 10 * time.Second: 1247,
		},
		UpTime: 3600*time.Second + 250*time.Millisecond,
		CPUs:   8, UsableCPUs: 4, Threads: 17,
		HeapAlloc: 4567584, HeapObjects: 21563, StackAlloc: 524288,
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got  %+v\nwant %+v", m, want)
	}
	if m.RequestN() != 1247 {
		t.Fatalf("RequestN() = %d, want 1247", m.RequestN())
	}
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  *kes.Metrics // nil means an error is expected
	}{
		{"empty", "", &kes.Metrics{LatencyHistogram: map[time.Duration]uint64{}}},
		{"legacy counters without code", "kes_http_request_success 5\nkes_http_request_error 2\n",
			&kes.Metrics{RequestOK: 5, RequestErr: 2, LatencyHistogram: map[time.Duration]uint64{}}},
		{"timestamps and escaped labels", `kes_http_request_error{code="4\"0\\0",x="a,b}"} 3 1700000000000` + "\n",
			&kes.Metrics{RequestErr: 3, LatencyHistogram: map[time.Duration]uint64{}}},
		{"other families ignored", "go_goroutines 12\nkes_system_num_threads 3\n",
			&kes.Metrics{Threads: 3, LatencyHistogram: map[time.Duration]uint64{}}},
		{"not a number", "kes_system_num_cpu many\n", nil},
		{"unterminated labels", `kes_http_request_error{code="400" 3`, nil},
		{"no value", "kes_system_num_cpu\n", nil},
		{"bucket without le", `kes_http_response_time_bucket{x="1"} 3`, nil},
		{"bucket bound not a number", `kes_http_response_time_bucket{le="soon"} 3`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kes.ParseMetrics(strings.NewReader(tt.input))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseMetrics(f *testing.F) {
	exposition, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(exposition))
	f.Add(`kes_http_response_time_bucket{le="1e308"} NaN`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := kes.ParseMetrics(strings.NewReader(s))
		if err == nil && m.LatencyHistogram == nil {
			t.Fatal("nil histogram without error")
		}
	})
}
