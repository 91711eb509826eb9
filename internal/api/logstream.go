package api

import (
	"net/http"
	"sync"

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
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.watchAccess(r, sub, stop) })
	defer wg.Wait()
	defer close(stop)
	rc := http.NewResponseController(w)
	w.Header()["Content-Type"] = contentTypeNDJSON
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	sub.Stream(r.Context(), w, rc.Flush)
}

// watchAccess closes sub, which ends the stream, when a configuration
// reload takes from r's caller the right to call r's route (a new admin, a
// changed policy). It returns when stop is closed.
func (s *Server) watchAccess(r *request, sub *log.Subscription, stop <-chan struct{}) {
	st := r.state
	for {
		select {
		case <-stop:
			return
		case <-st.replaced:
		}
		st = s.state.Load()
		if !st.allows(r) {
			sub.Close()
			return
		}
	}
}

// allows reports whether r's caller may still call r's route under st.
func (st *state) allows(r *request) bool {
	for i := range st.routes {
		rt := &st.routes[i]
		if rt.Path != r.route.Path {
			continue
		}
		var err error
		switch rt.Auth {
		case authNone, authIdentify:
		case authDelegated:
			_, err = st.auth.CheckDelegated(r.Identity, r.URL.Path)
		default:
			_, err = st.auth.Check(r.Identity, r.URL.Path)
		}
		return err == nil
	}
	return false
}
