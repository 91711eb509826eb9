package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCountedConnClose: a connection closed after a read on it failed
// counts as ended by the server, one closed without a failure as dropped
// by the client, and an answer saying Connection: close as announced.
// Measure discards a run only when all of its new connections replace
// dropped ones, with none ended or announced.
func TestCountedConnClose(t *testing.T) {
	c := &loadClient{proto: HTTP1}
	counts := func() [4]int64 {
		return [4]int64{c.live.Load(), c.dropped.Load(), c.ended.Load(), c.announced.Load()}
	}

	a, b := net.Pipe()
	conn := &countedConn{Conn: a, client: c}
	c.live.Add(1)
	b.Close()
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a pipe whose peer is closed: %v, want EOF", err)
	}
	conn.Close()
	conn.Close()
	if got := counts(); got != [4]int64{0, 0, 1, 0} {
		t.Fatalf("after a failed read and two closes: live, dropped, ended, announced %v, want [0 0 1 0]", got)
	}

	a, b = net.Pipe()
	defer b.Close()
	conn = &countedConn{Conn: a, client: c}
	c.live.Add(1)
	conn.Close()
	if got := counts(); got != [4]int64{0, 1, 1, 0} {
		t.Fatalf("after a close without failure: live, dropped, ended, announced %v, want [0 1 1 0]", got)
	}

	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	}))
	ts.StartTLS()
	defer ts.Close()
	lc := newLoadClient(HTTP1, 1, ts.Client().Transport.(*http.Transport).TLSClientConfig)
	defer lc.Close()
	for _, path := range []string{"/keep", "/close"} {
		if err := lc.do(t.Context(), lc.workers[0], &target{url: ts.URL + path, replySize: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if n := lc.announced.Load(); n != 1 {
		t.Fatalf("%d answers announced the end of their connection, want 1", n)
	}
}
