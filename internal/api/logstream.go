package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/log"
)

// The log streams send each event produced after the subscription as one
// line of JSON, flushed at once, until the client goes away. Upstream HEAD
// sends the headers and then nothing (api.md §4.8); these really stream.
//
// Unlike upstream, each log serves at most log.MaxSubscribers streams at a
// time; past that a new stream is refused with 503 and
// errTooManyStreams, so that live streams cannot slow down the requests
// whose events they carry. A stream whose client does not take an event
// within streamWriteTimeout is ended, which frees its place.

var (
	// errTooManyStreams answers a stream request while its log has
	// log.MaxSubscribers streams.
	errTooManyStreams = kes.NewError(http.StatusServiceUnavailable, "too many log stream subscribers")
	// errStreamClosed answers a stream request while the server stops.
	errStreamClosed = kes.NewError(http.StatusServiceUnavailable, "log stream closed: the server is stopping")
)

// streamWriteTimeout is how long writing one batch of events to a stream's
// client may take. A client that stops reading fills its TCP buffers, and
// its stream then ends here instead of holding a subscription forever.
const streamWriteTimeout = 10 * time.Second

func (s *Server) errorLog(w http.ResponseWriter, r *request) {
	sub, err := s.errors.Subscribe()
	if err != nil {
		writeError(w, streamError(err))
		return
	}
	s.stream(w, r, sub)
}

func (s *Server) auditLog(w http.ResponseWriter, r *request) {
	sub, err := s.audit.Subscribe()
	if err != nil {
		writeError(w, streamError(err))
		return
	}
	s.stream(w, r, sub)
}

// streamError returns the API error of a failed Subscribe.
func streamError(err error) *kes.Error {
	if errors.Is(err, log.ErrTooManySubscribers) {
		return errTooManyStreams
	}
	return errStreamClosed
}

func (s *Server) stream(w http.ResponseWriter, r *request, sub *log.Subscription) {
	defer sub.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.watchAccess(r, sub, stop) })
	defer wg.Wait()
	defer close(stop)
	limitSendBuffer(r)
	rc := http.NewResponseController(w)
	// The route has no timeout, so no write deadline is left on the
	// connection (setWriteDeadline); leave none behind either.
	defer rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // the stream is over either way
	w.Header()["Content-Type"] = contentTypeNDJSON
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	sub.Stream(r.Context(), deadlineWriter{w, rc}, rc.Flush)
}

// streamSendBuffer is the kernel send buffer of an HTTP/1.1 connection that
// carries a log stream. Linux grows a connection's buffer up to 4 MiB when
// its client does not read (tcp_wmem); a few such streams then held 30 MB
// of kernel memory and slowed every other connection down. With a small
// buffer an unread stream blocks soon, and loses events (counted) instead.
const streamSendBuffer = 64 << 10

// limitSendBuffer sets the send buffer of r's connection to
// streamSendBuffer, if r is HTTP/1.1 over TCP: the stream is then the only
// user of the connection. An HTTP/2 connection is shared, so it is left
// alone.
func limitSendBuffer(r *request) {
	c, ok := r.Context().Value(connKey{}).(*connInfo)
	if !ok || r.ProtoMajor != 1 {
		return
	}
	conn := c.conn
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		conn = tc.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetWriteBuffer(streamSendBuffer) //nolint:errcheck // a larger buffer only costs memory
	}
}

// deadlineWriter gives every write streamWriteTimeout to complete, together
// with the flush that follows it.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	// Writers without deadlines (ErrNotSupported) are written to as they are.
	d.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) //nolint:errcheck // see above
	return d.w.Write(p)
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
