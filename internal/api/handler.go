package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/log"
)

// request is what a handler sees of a request that passed the checks of its
// route.
type request struct {
	*http.Request
	route    *route
	Resource string       // the path after the route prefix, e.g. the key name
	Identity kes.Identity // empty on unauthenticated routes
	IP       netip.Addr
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
// §1.2), then the route's handler, metrics and audit.
func (s *Server) handler(rt *route) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		req := request{Request: r, route: rt}
		s.serve(w, &req)
		if rt.Audited {
			if w.status == 0 {
				w.status = http.StatusOK
			}
			s.audit.Log(log.AuditEvent{
				Time:     start,
				Method:   r.Method,
				Path:     r.URL.Path,
				IP:       req.IP,
				Identity: req.Identity,
				Status:   w.status,
				Duration: time.Since(start),
			})
		}
	})
}

func (s *Server) serve(w *statusWriter, r *request) {
	rt := r.route
	if r.Method != rt.Method && (rt.Method != http.MethodPut || r.Method != http.MethodPost) {
		w.Header()["Accept"] = []string{rt.Method}
		writeError(w, kes.ErrMethod(r.Method, rt.Method))
		return
	}
	if rt.MaxBody == 0 {
		r.Body = http.NoBody
	}
	if rt.Timeout > 0 {
		// Like upstream, a timeout is a write deadline: past it, the
		// response cannot be written and the connection is dropped.
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(rt.Timeout))
	}
	if rt.Auth != authNone {
		id, ip, err := identity(r.Request)
		r.IP = ip
		if err == nil {
			r.Identity = id
		}
		if rt.Auth == authVerify {
			if err != nil {
				s.errLog.Debug(err.Msg, reqAttrs(r))
				writeError(w, err)
				return
			}
			if err := s.auth.Authorize(id, r.URL.Path); err != nil {
				s.errLog.Debug("access denied: "+err.Error(), reqAttrs(r))
				writeError(w, kes.ErrNotAllowed)
				return
			}
		}
	}
	if rt.prefix() {
		if len(r.URL.Path) > len(rt.Path) {
			r.Resource = r.URL.Path[len(rt.Path):]
		}
	}
	if !rt.Counted {
		rt.Handle(s, w, r)
		return
	}
	start := time.Now()
	s.metrics.RequestStarted()
	rt.Handle(s, w, r)
	s.metrics.RequestDone(w.status, time.Since(start))
}

// reqAttrs are the attributes of error-log records about a request.
func reqAttrs(r *request) slog.Attr {
	return log.Request(r.Method, r.URL.Path, r.IP, r.Identity)
}

// readJSON decodes the request body into v, reading at most the route's
// MaxBody bytes. A longer body is cut, so the decoder fails: like upstream,
// that is a 400, not a 413.
func readJSON(r *request, v any) bool {
	err := json.NewDecoder(io.LimitReader(r.Body, r.route.MaxBody)).Decode(v)
	return err == nil
}
