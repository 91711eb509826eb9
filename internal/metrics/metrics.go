// Package metrics holds the Prometheus metrics of the KES server and serves
// them at GET /v1/metrics (spec observability.md §3): the same names, types,
// labels, HELP strings and histogram buckets as upstream KES, in an own
// registry without the Go and process collectors.
//
// # Counting rules
//
// The server decides what it counts; this package only records. As upstream:
//
//   - Only the key, policy and identity routes (self-describe included) are
//     counted and timed, with [Metrics.RequestStarted] when the handler runs
//     and [Metrics.RequestDone] when it returns. /version, /v1/status,
//     /v1/ready, /v1/metrics, /v1/api, the log streams, unknown paths (404),
//     method errors (405) and authentication or authorization failures (the
//     400/403 produced before the handler) are not.
//   - A status is counted in kes_http_request_success (2xx),
//     kes_http_request_error (4xx) or kes_http_request_failure (5xx) under
//     the label code="<status>". A code series appears at its first use;
//     counters are absent, not 0, before that. Other statuses are timed but
//     not counted.
//   - kes_log_error_events and kes_log_audit_events count every log event
//     the server produces (records passing the level, whether or not anyone
//     streams them), as releases up to 2024-01-11 did: wire
//     [Metrics.ErrorEvent] and [Metrics.AuditEvent] to the onEvent hooks
//     of the error and audit log constructors.
//   - The kes_system_* gauges are sampled when the registry is scraped.
//   - Not in upstream: kes_log_audit_suppressed_events counts the audit
//     lines of denied requests left out by the per-source limit (each
//     summarized in the audit log), and kes_log_audit_stream_dropped_events
//     and kes_log_error_stream_dropped_events the events that live-stream
//     subscribers lost because their queue was full. They are read from
//     the logs at scrape time ([Metrics.CountLogs]) and are 0 until then.
//     Each has one sample, as kms-go's parser requires.
//   - Not in upstream either: kes_http_request_rate_limited counts the
//     requests refused with 429 by a rate limit ([Metrics.RateLimited]),
//     which the request counters leave out like other refusals before the
//     handler. It has no labels: kms-go refuses a family with more than
//     one sample, so it cannot be split by policy (the audit log names
//     the identity of each).
//
// This package must not import internal/api, a key store or the SDK.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ResponseTimeBuckets are the upper bounds, in seconds, of the
// kes_http_response_time histogram; +Inf is implied.
var ResponseTimeBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 3, 5, 10}

// Status codes with a cached counter: 200 to 599.
const (
	minCode = 200
	maxCode = 599
)

// Metrics are the metrics of one server. Create them with [New]. All
// methods are safe for concurrent use.
type Metrics struct {
	registry *prometheus.Registry

	requestOK, requestErr, requestFail *prometheus.CounterVec
	active                             prometheus.Gauge
	responseTime                       prometheus.Histogram
	errorEvents                        prometheus.Counter
	auditEvents                        prometheus.Counter
	keysPurged                         prometheus.Counter
	rateLimited                        prometheus.Counter

	// logs reads the counters of the logs; nil until CountLogs.
	logs atomic.Pointer[LogCounters]

	// hsm reads the HSM counters; nil until CountHSM registers them.
	hsm     atomic.Pointer[func() (ops, errs uint64)]
	hsmOnce sync.Once

	// codes caches the counter of each status code once it was used, so
	// that counting a request does no label lookup or formatting. Entries
	// are created on first use because a series must not exist before.
	codes [maxCode - minCode + 1]atomic.Pointer[prometheus.Counter]
}

// New returns the metrics of a server started at start, registered in a
// new registry served by [Metrics.Handler].
func New(start time.Time) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requestOK: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kes_http_request_success",
			Help: "Number of requests that have been served successfully.",
		}, []string{"code"}),
		requestErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kes_http_request_error",
			Help: "Number of request that failed due to some error. (HTTP 4xx status code)",
		}, []string{"code"}),
		requestFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kes_http_request_failure",
			Help: "Number of request that failed due to some internal failure. (HTTP 5xx status code)",
		}, []string{"code"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kes_http_request_active",
			Help: "Number of active requests that are not finished, yet.",
		}),
		responseTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kes_http_response_time",
			Help:    "Histogram of request response times spawning from 10ms to 10s.",
			Buckets: ResponseTimeBuckets,
		}),
		errorEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kes_log_error_events",
			Help: "Number of error log events written to the error log targets.",
		}),
		auditEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kes_log_audit_events",
			Help: "Number of audit log events written to the audit log targets.",
		}),
		keysPurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kes_key_purged_total",
			Help: "Number of soft-deleted keys this server purged (retention passed, or purged on request). OpenKES extension.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kes_http_request_rate_limited",
			Help: "Number of requests refused with 429 because their identity exceeded its rate limit.",
		}),
	}
	m.registry.MustRegister(
		m.requestOK, m.requestErr, m.requestFail, m.active, m.responseTime,
		m.errorEvents, m.auditEvents, m.keysPurged, m.rateLimited,
		m.logCounter("kes_log_audit_suppressed_events",
			"Number of audit log events of denied requests not written because their source exceeded its rate; the audit log summarizes them.",
			func(c *LogCounters) func() uint64 { return c.AuditSuppressed }),
		m.logCounter("kes_log_audit_stream_dropped_events",
			"Number of audit log events not sent to a live-stream subscriber whose queue was full.",
			func(c *LogCounters) func() uint64 { return c.AuditDropped }),
		m.logCounter("kes_log_audit_sink_dropped_events",
			"Number of audit log events an audit sink (file, syslog) could not write or send.",
			func(c *LogCounters) func() uint64 { return c.AuditSinkDropped }),
		m.logCounter("kes_log_error_stream_dropped_events",
			"Number of error log events not sent to a live-stream subscriber whose queue was full.",
			func(c *LogCounters) func() uint64 { return c.ErrorDropped }),
		newSystemCollector(start, time.Now),
	)
	return m
}

// LogCounters are the counters of the logs that [Metrics.CountLogs]
// exposes. A nil func reads as 0. Each must be safe for concurrent use and
// never decrease.
type LogCounters struct {
	AuditSuppressed func() uint64 // kes_log_audit_suppressed_events
	AuditDropped    func() uint64 // kes_log_audit_stream_dropped_events
	ErrorDropped    func() uint64 // kes_log_error_stream_dropped_events
	// AuditSinkDropped counts kes_log_audit_sink_dropped_events.
	AuditSinkDropped func() uint64
}

// CountLogs makes the log counter families read c at every scrape; before
// the first call they read 0. A later call replaces c.
func (m *Metrics) CountLogs(c LogCounters) { m.logs.Store(&c) }

// logCounter returns a counter family with one sample whose value is the
// func that field selects from the LogCounters set by CountLogs.
func (m *Metrics) logCounter(name, help string, field func(*LogCounters) func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
		c := m.logs.Load()
		if c == nil {
			return 0
		}
		if f := field(c); f != nil {
			return float64(f())
		}
		return 0
	})
}

// RequestStarted counts a request as active. Every call must be matched by
// one call of [Metrics.RequestDone].
func (m *Metrics) RequestStarted() { m.active.Inc() }

// RequestDone ends a request started with [Metrics.RequestStarted]: it no
// longer counts as active, and it is recorded by [Metrics.Observe].
func (m *Metrics) RequestDone(status int, d time.Duration) {
	m.active.Dec()
	m.Observe(status, d)
}

// Observe records a finished request that answered with status after d:
// the counter of its status class and code grows by one and d goes into
// the response time histogram.
func (m *Metrics) Observe(status int, d time.Duration) {
	if c := m.counter(status); c != nil {
		c.Inc()
	}
	m.responseTime.Observe(d.Seconds())
}

// counter returns the counter of status, or nil for a status that is not
// counted (1xx, 3xx, invalid).
func (m *Metrics) counter(status int) prometheus.Counter {
	if status < minCode || status > maxCode {
		return nil
	}
	slot := &m.codes[status-minCode]
	if c := slot.Load(); c != nil {
		return *c
	}
	var vec *prometheus.CounterVec
	switch status / 100 {
	case 2:
		vec = m.requestOK
	case 4:
		vec = m.requestErr
	case 5:
		vec = m.requestFail
	default:
		return nil
	}
	// Concurrent first uses get the same child from the vector.
	c := vec.WithLabelValues(strconv.Itoa(status))
	slot.Store(&c)
	return c
}

// RateLimited counts one request refused by a rate limit.
func (m *Metrics) RateLimited() { m.rateLimited.Inc() }

// ErrorEvent counts one error log event.
func (m *Metrics) ErrorEvent() { m.errorEvents.Inc() }

// AuditEvent counts one audit log event.
func (m *Metrics) AuditEvent() { m.auditEvents.Inc() }

// KeysPurged counts n soft-deleted keys purged.
func (m *Metrics) KeysPurged(n int) { m.keysPurged.Add(float64(n)) }

// Registry returns the registry of m, to gather or register more
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler returns an HTTP handler that serves the metrics in the format
// the Accept header asks for: Prometheus text format 0.0.4 by default,
// delimited protobuf when requested. It does not check authorization.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
