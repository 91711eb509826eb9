package metrics_test

import (
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/openkes/kes/internal/metrics"
)

// requestFamilies are the families whose exact exposition is pinned here;
// the kes_system_* gauges change with every scrape.
var requestFamilies = []string{
	"kes_http_request_success", "kes_http_request_error", "kes_http_request_failure",
	"kes_http_request_active", "kes_http_response_time", "kes_log_error_events", "kes_log_audit_events",
}

func TestExposition(t *testing.T) {
	m := metrics.New(time.Now())
	m.RequestStarted()
	m.RequestStarted()
	m.RequestStarted()
	m.RequestDone(200, 5*time.Millisecond)
	m.RequestDone(200, 70*time.Millisecond)
	m.RequestDone(404, 2*time.Second)
	m.Observe(503, 20*time.Second)
	m.ErrorEvent()
	m.ErrorEvent()
	m.AuditEvent()

	const want = `# HELP kes_http_request_active Number of active requests that are not finished, yet.
# TYPE kes_http_request_active gauge
kes_http_request_active 0
# HELP kes_http_request_error Number of request that failed due to some error. (HTTP 4xx status code)
# TYPE kes_http_request_error counter
kes_http_request_error{code="404"} 1
# HELP kes_http_request_failure Number of request that failed due to some internal failure. (HTTP 5xx status code)
# TYPE kes_http_request_failure counter
kes_http_request_failure{code="503"} 1
# HELP kes_http_request_success Number of requests that have been served successfully.
# TYPE kes_http_request_success counter
kes_http_request_success{code="200"} 2
# HELP kes_http_response_time Histogram of request response times spawning from 10ms to 10s.
# TYPE kes_http_response_time histogram
kes_http_response_time_bucket{le="0.01"} 1
kes_http_response_time_bucket{le="0.05"} 1
kes_http_response_time_bucket{le="0.1"} 2
kes_http_response_time_bucket{le="0.25"} 2
kes_http_response_time_bucket{le="0.5"} 2
kes_http_response_time_bucket{le="1"} 2
kes_http_response_time_bucket{le="1.5"} 2
kes_http_response_time_bucket{le="3"} 3
kes_http_response_time_bucket{le="5"} 3
kes_http_response_time_bucket{le="10"} 3
kes_http_response_time_bucket{le="+Inf"} 4
kes_http_response_time_sum 22.075
kes_http_response_time_count 4
# HELP kes_log_audit_events Number of audit log events written to the audit log targets.
# TYPE kes_log_audit_events counter
kes_log_audit_events 1
# HELP kes_log_error_events Number of error log events written to the error log targets.
# TYPE kes_log_error_events counter
kes_log_error_events 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), requestFamilies...); err != nil {
		t.Error(err)
	}
}

// scrape fetches the metrics through the handler with the given Accept
// header and decodes them in the negotiated format.
func scrape(t *testing.T, m *metrics.Metrics, accept string) (http.Header, map[string]*dto.MetricFamily) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	families := make(map[string]*dto.MetricFamily)
	dec := expfmt.NewDecoder(rec.Body, expfmt.ResponseFormat(rec.Header()))
	for {
		var f dto.MetricFamily
		err := dec.Decode(&f)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding %q response: %v", rec.Header().Get("Content-Type"), err)
		}
		families[f.GetName()] = &f
	}
	return rec.Header(), families
}

func TestContentNegotiation(t *testing.T) {
	tests := []struct {
		name, accept, mediaType string
		params                  map[string]string
	}{
		{"default", "", "text/plain", map[string]string{"version": "0.0.4"}},
		{"any", "*/*", "text/plain", map[string]string{"version": "0.0.4"}},
		{"text", "text/plain", "text/plain", map[string]string{"version": "0.0.4"}},
		{
			"protobuf", string(expfmt.FmtProtoDelim), expfmt.ProtoType,
			map[string]string{"proto": expfmt.ProtoProtocol, "encoding": "delimited"},
		},
		{
			// What Prometheus sends: protobuf preferred.
			"prometheus", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1",
			expfmt.ProtoType, map[string]string{"proto": expfmt.ProtoProtocol, "encoding": "delimited"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New(time.Now())
			m.RequestDone(200, time.Millisecond)
			header, families := scrape(t, m, tt.accept)

			mediaType, params, err := mime.ParseMediaType(header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			if mediaType != tt.mediaType {
				t.Errorf("Content-Type %q, want media type %q", header.Get("Content-Type"), tt.mediaType)
			}
			for k, v := range tt.params {
				if params[k] != v {
					t.Errorf("Content-Type %q: %s=%q, want %q", header.Get("Content-Type"), k, params[k], v)
				}
			}
			if f := families["kes_http_request_success"]; f == nil || f.GetMetric()[0].GetCounter().GetValue() != 1 {
				t.Errorf("kes_http_request_success not decoded as 1: %v", f)
			}
		})
	}
}

func TestFamilies(t *testing.T) {
	m := metrics.New(time.Now())
	m.RequestDone(200, time.Millisecond)
	m.RequestDone(404, time.Millisecond)
	m.RequestDone(500, time.Millisecond)
	_, families := scrape(t, m, string(expfmt.FmtProtoDelim))

	want := map[string]dto.MetricType{
		"kes_http_request_success": dto.MetricType_COUNTER,
		"kes_http_request_error":   dto.MetricType_COUNTER,
		"kes_http_request_failure": dto.MetricType_COUNTER,
		"kes_http_request_active":  dto.MetricType_GAUGE,
		"kes_http_response_time":   dto.MetricType_HISTOGRAM,
		"kes_log_error_events":     dto.MetricType_COUNTER,
		"kes_log_audit_events":     dto.MetricType_COUNTER,
		// Ours, not upstream's (see the package doc), with one sample
		// each like every family but the request counters.
		"kes_log_audit_suppressed_events":     dto.MetricType_COUNTER,
		"kes_log_audit_stream_dropped_events": dto.MetricType_COUNTER,
		"kes_log_error_stream_dropped_events": dto.MetricType_COUNTER,
		"kes_http_request_rate_limited":       dto.MetricType_COUNTER,
		"kes_log_audit_sink_dropped_events":   dto.MetricType_COUNTER,
		"kes_system_up_time":                  dto.MetricType_GAUGE,
		"kes_system_num_cpu":                  dto.MetricType_GAUGE,
		"kes_system_num_cpu_used":             dto.MetricType_GAUGE,
		"kes_system_num_threads":              dto.MetricType_GAUGE,
		"kes_system_mem_heap_used":            dto.MetricType_GAUGE,
		"kes_system_mem_heap_objects":         dto.MetricType_GAUGE,
		"kes_system_mem_stack_used":           dto.MetricType_GAUGE,
		// Soft deletion (docs/key-deletion.md).
		"kes_key_purged_total": dto.MetricType_COUNTER,
	}
	if len(families) != len(want) {
		names := make([]string, 0, len(families))
		for name := range families {
			names = append(names, name)
		}
		t.Errorf("got %d families %v, want %d (no Go or process collectors)", len(families), names, len(want))
	}
	for name, typ := range want {
		f := families[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s has type %v, want %v", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		// kms-go (MinIO, `kes metric`) needs exactly one sample in each
		// family; the three request counters are one per code here.
		if n := len(f.GetMetric()); n != 1 {
			t.Errorf("%s has %d samples, want 1", name, n)
		}
	}
}

func TestSystemGauges(t *testing.T) {
	m := metrics.New(time.Now())
	_, families := scrape(t, m, "")
	value := func(name string) float64 { return families[name].GetMetric()[0].GetGauge().GetValue() }

	if got, want := value("kes_system_num_cpu"), float64(runtime.NumCPU()); got != want {
		t.Errorf("kes_system_num_cpu = %v, want %v", got, want)
	}
	if got, want := value("kes_system_num_cpu_used"), float64(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("kes_system_num_cpu_used = %v, want %v", got, want)
	}
	for _, name := range []string{"kes_system_num_threads", "kes_system_mem_heap_used", "kes_system_mem_heap_objects", "kes_system_mem_stack_used"} {
		if v := value(name); v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
}

func TestUpTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := metrics.New(time.Now())
		time.Sleep(83*time.Second + 456789*time.Microsecond) // fake time in the bubble

		_, families := scrape(t, m, "")
		got := families["kes_system_up_time"].GetMetric()[0].GetGauge().GetValue()
		if want := 83.45; math.Abs(got-want) > 1e-9 {
			t.Errorf("kes_system_up_time = %v, want %v (truncated to 10ms)", got, want)
		}
	})
}

// series returns the number of series of the family name.
func series(t *testing.T, m *metrics.Metrics, name string) int {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

func TestCodeSeriesAbsentUntilUsed(t *testing.T) {
	m := metrics.New(time.Now())
	countersOf := func() map[string]int {
		n := make(map[string]int)
		for _, name := range requestFamilies[:3] {
			n[name] = series(t, m, name)
		}
		return n
	}
	for name, n := range countersOf() {
		if n != 0 {
			t.Errorf("%s has %d series before any request, want none", name, n)
		}
	}

	m.RequestDone(404, time.Millisecond)
	m.RequestDone(404, time.Millisecond)
	m.RequestDone(403, time.Millisecond)
	got := countersOf()
	if got["kes_http_request_success"] != 0 || got["kes_http_request_error"] != 2 || got["kes_http_request_failure"] != 0 {
		t.Errorf("series after 404, 404, 403: %v, want only 2 error series", got)
	}
}

func TestUncountedStatus(t *testing.T) {
	m := metrics.New(time.Now())
	for _, status := range []int{0, 101, 199, 301, 304, 600, 999, -1} {
		m.Observe(status, time.Millisecond)
	}
	for _, name := range requestFamilies[:3] {
		if n := series(t, m, name); n != 0 {
			t.Errorf("%s has %d series for statuses outside 2xx/4xx/5xx", name, n)
		}
	}
	_, families := scrape(t, m, "")
	if n := families["kes_http_response_time"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 8 {
		t.Errorf("response time histogram counted %d requests, want 8: uncounted statuses are still timed", n)
	}
}

func TestActive(t *testing.T) {
	m := metrics.New(time.Now())
	m.RequestStarted()
	m.RequestStarted()
	m.RequestDone(200, 0)

	_, families := scrape(t, m, "")
	if v := families["kes_http_request_active"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("kes_http_request_active = %v, want 1", v)
	}
}

func TestConcurrentRequests(t *testing.T) {
	m := metrics.New(time.Now())
	const workers, perWorker = 8, 500
	codes := []int{200, 404, 503}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range perWorker {
				m.RequestStarted()
				m.RequestDone(codes[i%len(codes)], time.Duration(i)*time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := m.Registry().Gather(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()

	_, families := scrape(t, m, "")
	var total float64
	for _, name := range requestFamilies[:3] {
		f := families[name]
		if n := len(f.GetMetric()); n != 1 {
			t.Errorf("%s has %d series, want 1", name, n)
		}
		total += f.GetMetric()[0].GetCounter().GetValue()
	}
	if total != workers*perWorker {
		t.Errorf("counted %v requests, want %d", total, workers*perWorker)
	}
	if v := families["kes_http_request_active"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("kes_http_request_active = %v after all requests, want 0", v)
	}
	if n := families["kes_http_response_time"].GetMetric()[0].GetHistogram().GetSampleCount(); n != workers*perWorker {
		t.Errorf("histogram count %d, want %d", n, workers*perWorker)
	}
}

func BenchmarkRequestDone(b *testing.B) {
	m := metrics.New(time.Now())
	codes := []int{200, 200, 200, 404, 403, 502}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.RequestStarted()
			m.RequestDone(codes[i%len(codes)], 3*time.Millisecond)
			i++
		}
	})
}

func BenchmarkObserve(b *testing.B) {
	m := metrics.New(time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(200, 3*time.Millisecond)
		}
	})
}

func TestCountLogs(t *testing.T) {
	m := metrics.New(time.Now())
	value := func(name string) float64 {
		t.Helper()
		_, families := scrape(t, m, "")
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("family %s: %v, want one sample", name, f)
		}
		return f.GetMetric()[0].GetCounter().GetValue()
	}
	names := []string{"kes_log_audit_suppressed_events", "kes_log_audit_stream_dropped_events", "kes_log_error_stream_dropped_events",
		"kes_log_audit_sink_dropped_events"}
	for _, name := range names {
		if v := value(name); v != 0 {
			t.Errorf("%s = %v before CountLogs, want 0", name, v)
		}
	}
	m.CountLogs(metrics.LogCounters{
		AuditSuppressed:  func() uint64 { return 7 },
		AuditDropped:     func() uint64 { return 11 },
		ErrorDropped:     func() uint64 { return 13 },
		AuditSinkDropped: func() uint64 { return 17 },
	})
	for i, want := range []float64{7, 11, 13, 17} {
		if v := value(names[i]); v != want {
			t.Errorf("%s = %v, want %v", names[i], v, want)
		}
	}
	m.CountLogs(metrics.LogCounters{AuditDropped: func() uint64 { return 2 }})
	if v := value(names[0]); v != 0 {
		t.Errorf("%s = %v with a nil func, want 0", names[0], v)
	}
}
