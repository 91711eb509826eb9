package kes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is a snapshot of the Prometheus metrics of a server
// (spec observability.md §3), as returned by [Client.Metrics].
type Metrics struct {
	RequestOK     uint64 // responses with a 2xx status, summed over all codes
	RequestErr    uint64 // responses with a 4xx status, summed over all codes
	RequestFail   uint64 // responses with a 5xx status, summed over all codes
	RequestActive uint64 // requests being handled

	AuditEvents uint64 // audit events written to log subscribers
	ErrorEvents uint64 // error events written to log subscribers

	// LatencyHistogram maps the upper bound of each bucket of the response
	// time histogram to its cumulative count. The +Inf bucket is left out.
	LatencyHistogram map[time.Duration]uint64

	UpTime      time.Duration
	CPUs        int
	UsableCPUs  int
	Threads     int
	HeapAlloc   uint64
	HeapObjects uint64
	StackAlloc  uint64
}

// RequestN returns the number of responses counted so far.
func (m *Metrics) RequestN() uint64 { return m.RequestOK + m.RequestErr + m.RequestFail }

// Metrics returns the metrics of the server. It asks for the Prometheus text
// format and parses the KES metric families; others are ignored.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	resp, err := c.send(ctx, request{
		method: http.MethodGet,
		path:   []string{"v1", "metrics"},
		accept: "text/plain; version=0.0.4",
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(io.LimitReader(resp.Body, maxResponseSize))
}

// parseMetrics parses the KES families of a Prometheus text exposition.
func parseMetrics(r io.Reader) (*Metrics, error) {
	m := &Metrics{LatencyHistogram: map[time.Duration]uint64{}}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("kes: invalid metrics line %d: %w", n, err)
		}
		if err := m.add(name, labels, value); err != nil {
			return nil, fmt.Errorf("kes: invalid metrics line %d: %w", n, err)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("kes: read metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) add(name string, labels map[string]string, v float64) error {
	u := func() uint64 {
		if v <= 0 || math.IsNaN(v) {
			return 0
		}
		if v >= math.MaxUint64 {
			return math.MaxUint64
		}
		return uint64(v)
	}
	switch name {
	case "kes_http_request_success":
		m.RequestOK += u()
	case "kes_http_request_error":
		m.RequestErr += u()
	case "kes_http_request_failure":
		m.RequestFail += u()
	case "kes_http_request_active":
		m.RequestActive = u()
	case "kes_log_audit_events":
		m.AuditEvents = u()
	case "kes_log_error_events":
		m.ErrorEvents = u()
	case "kes_http_response_time_bucket":
		le, ok := labels["le"]
		if !ok {
			return fmt.Errorf("bucket without 'le' label")
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return fmt.Errorf("bucket bound '%s': %w", le, err)
		}
		if math.IsInf(bound, 0) || math.IsNaN(bound) || bound < 0 || bound > math.MaxInt64/float64(time.Second) {
			return nil // +Inf, or no bound a Duration can hold
		}
		m.LatencyHistogram[time.Duration(bound*float64(time.Second))] = u()
	case "kes_system_up_time":
		if v > 0 && v < math.MaxInt64/float64(time.Second) {
			m.UpTime = time.Duration(v * float64(time.Second))
		}
	case "kes_system_num_cpu":
		m.CPUs = int(min(u(), math.MaxInt32))
	case "kes_system_num_cpu_used":
		m.UsableCPUs = int(min(u(), math.MaxInt32))
	case "kes_system_num_threads":
		m.Threads = int(min(u(), math.MaxInt32))
	case "kes_system_mem_heap_used":
		m.HeapAlloc = u()
	case "kes_system_mem_heap_objects":
		m.HeapObjects = u()
	case "kes_system_mem_stack_used":
		m.StackAlloc = u()
	}
	return nil
}

// parseSample parses `name{label="value",...} value [timestamp]`.
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", nil, 0, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		labels, rest, err = parseLabels(rest[1:])
		if err != nil {
			return "", nil, 0, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", nil, 0, fmt.Errorf("want value and optional timestamp")
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("value '%s' is not a number", fields[0])
	}
	return name, labels, value, nil
}

// parseLabels parses `label="value",...}` and returns what follows the '}'.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", fmt.Errorf("unterminated label set")
		}
		if s[0] == '}' {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("invalid label")
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		j := eq + 2
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					val.WriteByte('\n')
				default: // \\ and \"
					val.WriteByte(s[j])
				}
				continue
			}
			val.WriteByte(s[j])
		}
		if j == len(s) {
			return nil, "", fmt.Errorf("unterminated label value")
		}
		labels[key] = val.String()
		s = strings.TrimLeft(s[j+1:], " \t")
		s = strings.TrimPrefix(s, ",")
	}
}
