package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/log"
)

// request is what a handler sees of a request that passed the checks of its
// route. It carries the response's status writer, so that a request costs
// one allocation.
type request struct {
	*http.Request
	state    *state // what the server was configured with when r started
	route    *route
	start    time.Time
	Resource string       // the path after the route prefix, e.g. the key name
	Identity kes.Identity // empty on unauthenticated routes
	IP       netip.Addr
	w        statusWriter
	counted  bool // counted in the HTTP metrics: RequestDone is due
	denied   bool // refused by authentication or authorization

	// bodyConn is the HTTP/1.1 connection whose read deadline
	// setDeadlines set for the body; nil if it set none.
	bodyConn *connInfo
}

// statusWriter records the status code for metrics and the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handler returns the http.Handler of rt: method check, body limit,
// deadline, authentication and authorization, in upstream's order (api.md
// §1.2), then the route's handler, metrics and audit. The rate limit
// (an OpenKES extension) sits between authentication and authorization.
func (s *Server) handler(st *state, rt *route) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			if s.h2Reset(r, true) {
				return // reset by the client before it started: nobody waits for an answer
			}
			if s.stacks != nil && s.stacks.serve(s, st, rt, rw, r) {
				return
			}
			growStack()
		}
		s.serveRequest(st, rt, rw, r)
	})
}

// serveJob serves the request of an HTTP/2 job of the stack pool.
func serveJob(j *h2Job) { j.s.serveRequest(j.st, j.rt, j.rw, j.r) }

// serveRequest serves r on rt with st, then counts and audits it.
func (s *Server) serveRequest(st *state, rt *route, rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req := &request{Request: r, state: st, route: rt, start: start, w: statusWriter{ResponseWriter: rw}}
	w := &req.w
	s.serve(w, req, start)
	if r.ProtoMajor == 2 {
		s.h2Reset(r, false)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rt.Counted && req.counted {
		s.metrics.RequestDone(w.status, time.Since(start))
	}
	if rt.Audited {
		s.audit.Log(log.AuditEvent{
			Time:     start,
			Method:   r.Method,
			Path:     r.URL.Path,
			IP:       req.IP,
			Identity: req.Identity,
			Status:   w.status,
			Duration: time.Since(start),
			Denied:   req.denied,
		})
	}
}

// growStack grows the goroutine's stack to what a request needs in one step.
//
// A request on a new goroutine (HTTP/2) would otherwise grow its stack two
// or three times, deep in the call chain, where each growth copies and
// adjusts more frames: runtime.morestack took about 6% of the server's CPU
// under HTTP/2 load (perf, kesload); growing it once at the top, where the
// stack is shallow, brought that to about 4-5%. The stack pool's workers
// grow theirs once for many requests (see stackPool).
//
//go:noinline
func growStack() {
	var frame [stackReserve]byte
	touchStack(frame[:])
}

// stackReserve is about the stack a request needs below the handler.
const stackReserve = 6 << 10

//go:noinline
func touchStack(b []byte) { b[len(b)-1] = 0 }

func (s *Server) serve(w *statusWriter, r *request, start time.Time) {
	rt := r.route
	if r.Method != rt.Method && (rt.Method != http.MethodPut || r.Method != http.MethodPost) {
		w.Header()["Accept"] = []string{rt.Method}
		writeError(w, kes.ErrMethod(r.Method, rt.Method))
		return
	}
	if rt.MaxBody == 0 {
		r.Body = http.NoBody
	}
	setDeadlines(w, r, start)
	if rt.Auth != authNone {
		id, ip, err := s.identify(r)
		r.IP = ip
		if err == nil || err == auth.ErrNotProxy {
			r.Identity = id
		}
		if err == auth.ErrNotProxy {
			// Refused on every route that identifies its caller: only
			// an attacker or a proxy missing from tls.proxy.identities
			// sends the header. The value, what the client claims to
			// be, is not logged. Every request is audited (the audit
			// log limits denied lines per source); the error log warns
			// once per connection, and within warnLimiter's bounds
			// over all connections, so a flood cannot fill it.
			if !conn(r.Request).notProxyWarned.Swap(true) {
				if ok, suppressed := s.notProxy.allow(time.Now()); ok {
					s.errLog.Warn("forwarded client certificate from an identity that is not a TLS proxy",
						"header", s.proxy.Load().Header(), "limit", notProxyLimitText,
						"suppressed_connections", suppressed, reqAttrs(r))
				}
			}
			r.denied = true
			writeError(w, err)
			return
		}
		if err == nil && s.rateLimited(w, r, id) {
			return
		}
		if rt.Auth == authVerify || rt.Auth == authDelegated {
			if err != nil {
				r.denied = true
				s.debug(r, err.Msg)
				writeError(w, err)
				return
			}
			var policy string
			var denied error
			if rt.Auth == authDelegated {
				policy, denied = r.state.auth.CheckDelegated(id, r.URL.Path)
			} else {
				policy, denied = r.state.auth.Check(id, r.URL.Path)
			}
			if denied != nil {
				r.denied = true
				if policy == "" {
					s.debug(r, "access denied: identity not found")
				} else {
					s.debug(r, "access denied: rejected by policy '"+policy+"'")
				}
				writeError(w, kes.ErrNotAllowed)
				return
			}
		}
	}
	if rt.prefix() && len(r.URL.Path) > len(rt.Path) {
		r.Resource = r.URL.Path[len(rt.Path):]
	}
	if rt.Counted {
		// Only requests that reach their handler are counted (upstream:
		// method and authorization failures are not).
		r.counted = true
		s.metrics.RequestStarted()
	}
	rt.Handle(s, w, r)
}

// setDeadlines applies the route's timeout to reading the request body and
// writing the response. The handler's store calls end at the timeout
// (storeContext), and the answer is then 503; the write deadline comes
// writeGrace later, so that answer can still be written, and drops the
// connection of a client that does not read its response.
//
// On HTTP/1.1 the body must also arrive by the timeout: a client sending
// it a byte a second would otherwise hold the connection for as long as it
// likes, through the handler's read or, on routes that do not read bodies,
// through the server's discarding of up to 256 KB of unread body before it
// answers. The server clears the read deadline before the next request.
// Requests without a body (most of them) skip the call. On HTTP/2 the
// stream's write deadline resets a stream whose body is still coming.
//
// On HTTP/1.1 the write deadline belongs to the connection and outlives
// the request, so a route without timeout (the log streams) clears it.
// Setting it costs about a microsecond, so it is only moved when it is off
// by more than deadlineSlack: requests on a connection are sequential, on
// the connection's goroutine, so connInfo needs no lock. On HTTP/2 every
// stream has its own deadline.
func setDeadlines(w *statusWriter, r *request, start time.Time) {
	timeout := r.route.Timeout
	c, ok := r.Context().Value(connKey{}).(*connInfo)
	if !ok || r.ProtoMajor != 1 {
		if timeout > 0 {
			http.NewResponseController(w.ResponseWriter).SetWriteDeadline(start.Add(timeout + writeGrace))
		}
		return
	}
	if timeout > 0 && r.ContentLength != 0 {
		c.conn.SetReadDeadline(start.Add(timeout))
		r.bodyConn = c
	}
	var want time.Time
	if timeout > 0 {
		want = start.Add(timeout + writeGrace)
	}
	if want.IsZero() == c.deadline.IsZero() && (want.IsZero() || c.deadline.Sub(want).Abs() < deadlineSlack) {
		return
	}
	if c.conn.SetWriteDeadline(want) == nil {
		c.deadline = want
	}
}

// writeGrace is how long after the route's timeout the response may still
// be written. It exceeds deadlineSlack, so an HTTP/1.1 write deadline left
// in place is still after the timeout.
const writeGrace = 2 * deadlineSlack

// storeContext returns the context of r's key store calls: r's context,
// ending at the route's timeout. Routes without timeout get r's context.
func (r *request) storeContext() (context.Context, context.CancelFunc) {
	if r.route.Timeout <= 0 {
		return r.Context(), func() {}
	}
	return context.WithDeadline(r.Context(), r.start.Add(r.route.Timeout))
}

// deadlineSlack is how far the write deadline of an HTTP/1.1 connection may
// be from the route's timeout before it is moved.
const deadlineSlack = time.Second

// debug logs a DEBUG record about r, building its attributes only when
// DEBUG is enabled.
func (s *Server) debug(r *request, msg string) {
	if s.errLog.Enabled(r.Context(), slog.LevelDebug) {
		s.errLog.Debug(msg, reqAttrs(r))
	}
}

// reqAttrs are the attributes of error-log records about a request.
func reqAttrs(r *request) slog.Attr {
	return log.Request(r.Method, r.URL.Path, r.IP, r.Identity)
}

// readJSON decodes the request body into v, reading at most the route's
// MaxBody bytes. A longer body is cut, so decoding fails: like upstream,
// that is a 400, not a 413. As upstream, one JSON value is decoded and
// whatever follows it is ignored.
func readJSON(r *request, v any) bool { return readBytesJSON(r, v, nil, nil) }

// readBytesJSON is readJSON for bodies whose fields are byte strings:
// names[i] is the JSON name of the field dst[i] points into, and version,
// if not nil, the string field "version" of v. Common bodies are decoded
// without reflection (decodeBytesFields).
func readBytesJSON(r *request, v any, names []string, version *string, dst ...*[]byte) bool {
	buf := bodyPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyPool.Put(buf)
		}
	}()
	err := readBody(buf, r.Body, r.route.MaxBody)
	if err == nil && int64(buf.Len()) < r.route.MaxBody {
		r.bodyRead()
	}
	if err != nil {
		return false
	}
	if names != nil {
		if decodeBytesFields(buf.Bytes(), names, dst, version) {
			return true
		}
		for _, d := range dst {
			*d = nil
		}
		if version != nil {
			*version = ""
		}
	}
	// Unmarshal is the fast general path; it refuses data after the
	// value, which the decoder (upstream's behaviour) accepts.
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		var syntax *json.SyntaxError
		if !errors.As(err, &syntax) {
			return false
		}
		return json.NewDecoder(bytes.NewReader(buf.Bytes())).Decode(v) == nil
	}
	return true
}

// bodyRead moves the read deadline that setDeadlines set for the body of
// an HTTP/1.1 request to the write deadline, once all of the body is in.
// Go's server then reads on in the background to notice a client that
// closes the connection, and a read that fails ends the request's context:
// at the route's timeout, that would race with the handler's 503. A body
// that was not read whole keeps the deadline, so that the server's
// discarding of its rest, before it answers, ends at the timeout too.
func (r *request) bodyRead() {
	if r.bodyConn != nil {
		r.bodyConn.conn.SetReadDeadline(r.start.Add(r.route.Timeout + writeGrace))
		r.bodyConn = nil
	}
}

// readBody appends at most max bytes of body to buf. It is
// buf.ReadFrom(io.LimitReader(body, max)) without allocating the limiter.
func readBody(buf *bytes.Buffer, body io.Reader, max int64) error {
	for int64(buf.Len()) < max {
		buf.Grow(512)
		free := buf.AvailableBuffer()
		free = free[:min(int64(cap(free)), max-int64(buf.Len()))]
		n, err := body.Read(free)
		buf.Write(free[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bodyPool holds request body buffers. json.Unmarshal copies what it keeps,
// so a buffer is reused as soon as the body is decoded.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody bounds the buffers kept in bodyPool: a rare 1 MB body must
// not pin a megabyte per pooled buffer.
const maxPooledBody = 64 << 10
