package api

import (
	"net/http"

	"github.com/openkes/kes/internal/log"
)

// The log streams send each event produced after the subscription as one
// line of JSON, flushed at once, until the client goes away. Upstream HEAD
// sends the headers and then nothing (api.md §4.8); these really stream.

func (s *Server) errorLog(w http.ResponseWriter, r *request) {
	s.stream(w, r, s.errors.Subscribe())
}

func (s *Server) auditLog(w http.ResponseWriter, r *request) {
	s.stream(w, r, s.audit.Subscribe())
}

func (s *Server) stream(w http.ResponseWriter, r *request, sub *log.Subscription) {
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header()["Content-Type"] = contentTypeNDJSON
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	sub.Stream(r.Context(), w, rc.Flush)
}
