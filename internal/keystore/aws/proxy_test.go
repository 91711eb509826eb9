package aws_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a loopback HTTP proxy in front of kumo. kumo cannot throttle,
// fail or stall, so the proxy does it: a hook sees every request first and
// may answer it in AWS's terms; the rest are forwarded. It records every
// request and counts the TCP connections clients open to it.
type proxy struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []proxyRequest
	hook func(w http.ResponseWriter, r *http.Request, pr *proxyRequest) bool // true = answered

	conns  atomic.Int64  // connections accepted, also the number of the last one
	open   atomic.Int64  // connections not yet closed
	closed chan struct{} // gets a value whenever a connection closes
}

// proxyRequest is one request as the proxy received it.
type proxyRequest struct {
	Op     string // X-Amz-Target without the "secretsmanager." prefix; "" for other requests
	Method string
	Header http.Header
	Body   []byte
	N      int   // 1-based number of this request among those of the same Op
	Conn   int64 // number of the client connection it came on
}

type connKey struct{}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{closed: make(chan struct{}, 1)}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
		p.mu.Lock()
		conn, _ := r.Context().Value(connKey{}).(int64)
		pr := proxyRequest{Op: op, Method: r.Method, Header: r.Header.Clone(), Body: body, Conn: conn}
		for _, q := range p.reqs {
			if q.Op == op {
				pr.N++
			}
		}
		pr.N++
		p.reqs = append(p.reqs, pr)
		hook := p.hook
		p.mu.Unlock()
		if hook != nil && hook(w, r, &pr) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			p.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			p.open.Add(-1)
			select {
			case p.closed <- struct{}{}:
			default:
			}
		}
	}
	p.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, p.conns.Add(1))
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// waitClosed waits until every client connection is closed, and fails t if
// some stay open for 10 seconds.
func (p *proxy) waitClosed(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for p.open.Load() > 0 {
		select {
		case <-p.closed:
		case <-timeout:
			t.Fatalf("%d client connections still open", p.open.Load())
		}
	}
}

// URL returns the proxy's http://127.0.0.1:port.
func (p *proxy) URL() string { return p.srv.URL }

// setHook replaces the hook; nil forwards everything.
func (p *proxy) setHook(h func(w http.ResponseWriter, r *http.Request, pr *proxyRequest) bool) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// requests returns the recorded requests of op ("" = all).
func (p *proxy) requests(op string) []proxyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []proxyRequest
	for _, r := range p.reqs {
		if op == "" || r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// reset forgets the recorded requests.
func (p *proxy) reset() {
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
}

// awsError answers as Secrets Manager does (AWS JSON 1.1): the error code
// in __type and in the X-Amzn-ErrorType header, and a request id.
func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("X-Amzn-RequestId", "00000000-0000-0000-0000-000000000000")
	w.WriteHeader(status)
	io.WriteString(w, `{"__type":"`+code+`","message":"`+msg+`"}`)
}
