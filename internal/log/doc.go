// Package log implements the two logs of the KES server (spec
// observability.md §1–§2): the error log, a [log/slog] logger whose records
// are printed as slog text lines, and the audit log, one typed [AuditEvent]
// per API call. Both print to a console writer and fan every record out to
// the live subscribers of GET /v1/log/error and GET /v1/log/audit
// ([Subscription]).
//
// # Levels
//
// Each log has a minimum level, usually a *slog.LevelVar so that a config
// reload can change it ([ParseLevel] reads the config values of config.md
// §8). A record below the level is neither printed nor streamed nor counted.
// Audit records are INFO, so an audit level of "off" or WARN and above
// silences the audit log.
//
// # Streaming never blocks logging
//
// A subscriber buffers at most [SubscriberBuffer] events; while its buffer is
// full, events for it are dropped and counted ([Subscription.Dropped],
// [AuditLog.Dropped]), so a stalled HTTP client can neither slow down the
// server nor make it hold an unbounded amount of memory. Publishing takes
// no lock shared by the goroutines that log: the subscribers are a
// copy-on-write slice, and each gets the event by a non-blocking send. A log
// has at most [MaxSubscribers] subscribers, [Subscription.Stream] writes a
// subscriber's events in batches of [StreamDelay], and a streamed
// subscriber whose buffer is full is left out of publishing until its
// stream has written the buffer out, so the work of the streams per event
// stays small and a client that stopped reading costs nothing. With no
// subscriber, no JSON is encoded at all.
//
// # Denied requests
//
// The lines of denied requests are rate limited per source and summarized
// (see [AuditLog]). A goroutine writes those summaries: it runs while
// denied requests were seen in the last 10 s, and [AuditLog.Close] stops it
// and waits for it.
//
// # Audit sinks
//
// A [Sink] (an audit file, [NewFileSink], or a syslog server,
// [NewSyslogSink]) gets every audit event's JSON line. Logging only queues
// the line; a goroutine of the sink writes the queue in batches, and
// [AuditLog.Shutdown] writes what is left and stops it. A full queue makes
// the file sink's callers wait and the syslog sink drop (and count), so
// that no syslog server can stall the API. The file sink's wait is bounded:
// a writer that makes no progress for 5 s is deemed hung, and the sink
// drops (and counts) until it moves again.
//
// # Audit console writes
//
// The audit log prints a line for every API call, so its console line is
// formatted by hand, without allocating, into exactly the bytes that
// slog.TextHandler would print, and lines logged concurrently are written
// together: a call that finds a console write in progress queues its line
// and returns, and the goroutine doing the write writes the queue next
// ([AuditLog.Log]). No line is dropped, and [AuditLog.Flush] waits for the
// queue to be written.
//
// # Metrics
//
// The onEvent hooks given to [NewErrorLog] and [NewAuditLog] are called once
// for every record that passes the level filter, whether or not anybody
// subscribes. They are fixed at construction, so the first record, often
// logged while the server connects to its key store, is counted too. Wired to
// the kes_log_error_events and kes_log_audit_events counters this counts
// every event the server produces, as KES releases up to 2024-01-11 did
// (later releases count one per event and subscriber).
//
// # Secrets
//
// Nothing logged here may contain key material, plaintext, API keys or
// tokens. Callers pass only names, paths, identities (public key hashes),
// addresses and error texts that do not embed secrets; this package prints
// what it is given.
//
// This package must not import internal/api or any key store.
package log
