package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Proto is an HTTP protocol and connection layout of the load.
type Proto int

const (
	// HTTP1 is HTTP/1.1 with one keep-alive connection per client.
	HTTP1 Proto = iota
	// HTTP2 is HTTP/2 with all clients multiplexed on one connection.
	HTTP2
	numProtos
)

func (p Proto) String() string {
	if p == HTTP1 {
		return "HTTP/1.1"
	}
	return "HTTP/2"
}

// Op is a measured API operation on the key "bench".
type Op int

const (
	// Generate is POST /v1/key/generate/bench.
	Generate Op = iota
	// Decrypt is POST /v1/key/decrypt/bench.
	Decrypt
	numOps
)

func (op Op) String() string {
	if op == Generate {
		return "generate"
	}
	return "decrypt"
}

// Path returns the request path of op.
func (op Op) Path() string { return "/v1/key/" + op.String() + "/" + keyName }

// keyName is the key the load uses.
const keyName = "bench"

// maxReply bounds the reply bodies the clients read.
const maxReply = 1 << 16

// loadClient is a set of HTTP clients of one protocol for one server.
type loadClient struct {
	proto   Proto
	workers []*http.Client // one per concurrent client
	dials   atomic.Int64   // TCP connections opened so far
	live    atomic.Int64   // TCP connections open now
	// dropped counts the connections the client closed although no read
	// or write on them had failed: the Transport's own decision, or the
	// answer of one of them said Connection: close (counted in
	// announced too). ended counts those closed after a read or write
	// on them failed: the server (or the network) ended them.
	dropped, ended, announced atomic.Int64
}

// newLoadClient returns n clients: for HTTP1 each with its own transport
// and at most one connection, for HTTP2 all on one transport with one
// connection.
func newLoadClient(p Proto, n int, conf *tls.Config) *loadClient {
	c := &loadClient{proto: p, workers: make([]*http.Client, n)}
	var shared *http.Transport
	for i := range c.workers {
		t := shared
		if t == nil {
			t = c.transport(conf)
		}
		if p == HTTP2 {
			shared = t
		}
		c.workers[i] = &http.Client{Transport: t, Timeout: time.Minute}
	}
	return c
}

func (c *loadClient) transport(conf *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	t := &http.Transport{
		TLSClientConfig: conf.Clone(),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c.dials.Add(1)
			c.live.Add(1)
			return &countedConn{Conn: conn, client: c}, nil
		},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		Protocols:           new(http.Protocols),
	}
	if c.proto == HTTP1 {
		t.Protocols.SetHTTP1(true)
	} else {
		t.Protocols.SetHTTP2(true)
	}
	return t
}

// Close closes the idle connections of every worker.
func (c *loadClient) Close() {
	for _, w := range c.workers {
		w.CloseIdleConnections()
	}
}

// countedConn decrements its client's live count when it is closed, and
// counts the close as dropped or ended: whether a read or write on it had
// failed before.
type countedConn struct {
	net.Conn
	once   sync.Once
	client *loadClient
	failed atomic.Bool
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.client.live.Add(-1)
		if c.failed.Load() {
			c.client.ended.Add(1)
		} else {
			c.client.dropped.Add(1)
		}
	})
	return c.Conn.Close()
}

// wantConns is the number of connections the clients must hold.
func (c *loadClient) wantConns() int64 {
	if c.proto == HTTP2 {
		return 1
	}
	return int64(len(c.workers))
}

// target is where and what the clients send, and the reply they expect.
type target struct {
	url       string // https://127.0.0.1:port/v1/key/<op>/bench
	body      []byte
	replySize int
}

// do sends one request and checks that the answer is 200 with a body of
// the expected size over the expected protocol.
func (c *loadClient) do(ctx context.Context, hc *http.Client, t *target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(t.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	resp.Body.Close()
	if resp.Close {
		c.announced.Add(1)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: read reply: %w", t.url, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: status %d: %.200s", t.url, resp.StatusCode, body)
	case resp.ProtoMajor != int(c.proto)+1:
		return fmt.Errorf("%s: answered over %s, want %v", t.url, resp.Proto, c.proto)
	case len(body) != t.replySize:
		return fmt.Errorf("%s: reply of %d bytes, want %d", t.url, len(body), t.replySize)
	}
	return nil
}

// each sends perWorker requests from every worker, concurrently.
func (c *loadClient) each(ctx context.Context, t *target, perWorker int) error {
	_, err := c.run(ctx, t, func(w, i int) int {
		if i < perWorker {
			return w*perWorker + i
		}
		return -1
	}, nil)
	return err
}

// load sends n requests from all workers concurrently; each worker takes
// the next request from a shared counter. It returns the number of
// requests answered with 200 and the expected body. If lat is not nil it
// must hold n entries: the client-observed latency of request i (in the
// order the counter handed them out) goes to lat[i].
func (c *loadClient) load(ctx context.Context, t *target, n int, lat []time.Duration) (int, error) {
	if lat != nil && len(lat) != n {
		return 0, fmt.Errorf("kesload: %d latency slots for %d requests", len(lat), n)
	}
	var next atomic.Int64
	return c.run(ctx, t, func(int, int) int {
		if i := next.Add(1) - 1; i < int64(n) {
			return int(i)
		}
		return -1
	}, lat)
}

// run runs every worker until next returns a negative slot for it (next
// is called with the worker's index and the number of requests it has
// sent, and returns a slot unique to the request); the first error stops
// all. If lat is not nil, each request's latency goes to lat[slot]: the
// slots are disjoint and preallocated, so recording takes no lock and no
// allocation while the server is measured. It returns the number of
// requests answered correctly.
func (c *loadClient) run(ctx context.Context, t *target, next func(w, i int) int, lat []time.Duration) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for w, hc := range c.workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				slot := next(w, i)
				if slot < 0 {
					return
				}
				t0 := time.Now()
				if err := c.do(ctx, hc, t); err != nil {
					cancel(err)
					return
				}
				if lat != nil {
					lat[slot] = time.Since(t0)
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), context.Cause(ctx)
}
