package kes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Retry and failover parameters (spec cli.md §2.1).
const (
	// MaxRetries is how often a request is repeated on one endpoint after a
	// network error or a 503 response.
	MaxRetries = 2
	// ParkDuration is how long an endpoint that failed is skipped, unless
	// every endpoint is parked.
	ParkDuration = 30 * time.Second

	// MaxRateLimitRetries is how often a request answered 429 (too many
	// requests) is repeated on one endpoint, each time after the wait the
	// server asked for, before the next endpoint is tried.
	MaxRateLimitRetries = 3
	// MaxRetryAfter caps the wait before one such repetition, whatever
	// the server's Retry-After says.
	MaxRetryAfter = 10 * time.Second

	retryDelay  = 200 * time.Millisecond
	retryJitter = 800 * time.Millisecond

	maxResponseSize = 64 << 20 // bytes of a response the client reads; key listings are one response
	maxErrorSize    = 64 << 10
)

// ConnError is the error of a request that got no response from a server:
// a refused connection, a failed TLS handshake, a timeout.
type ConnError struct {
	Host string // endpoint host, e.g. "127.0.0.1:7373"
	Err  error  // the transport error
}

func (e *ConnError) Error() string { return "kes: connection error: " + e.Err.Error() }

// Unwrap returns the transport error.
func (e *ConnError) Unwrap() error { return e.Err }

// request is one API call. Its body is kept as bytes so that every retry
// sends it again from the start.
type request struct {
	method string
	path   []string   // path segments, escaped when the URL is built
	query  url.Values // nil for none
	body   []byte     // nil for no body
	accept string
	// stream leaves the response body to the caller as it arrives (log
	// streams). Other responses are read completely before send returns,
	// so that a connection lost in the middle of a body is retried and
	// failed over like any other connection error.
	stream bool
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// send performs req against the endpoints with retry and failover, and
// returns a response with status 200. Any other status is decoded into an
// [*Error]. The caller closes the response body.
func (c *Client) send(ctx context.Context, req request) (*http.Response, error) {
	order, parked := c.lb.order()
	var (
		resp *http.Response
		err  error
	)
	for _, i := range order {
		if resp != nil {
			resp.Body.Close()
		}
		resp, err = c.sendTo(ctx, c.endpoints[i], req)
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, context.Cause(ctx)
		}
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			// This endpoint limits the client; another one counts its
			// requests apart. A limit is no fault: nothing is parked.
			continue
		}
		if !endpointFailed(resp, err) {
			break
		}
		if !parked[i] {
			c.lb.park(i)
		}
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		err := parseErrorResponse(resp)
		if e, ok := err.(*Error); ok && resp.StatusCode == http.StatusTooManyRequests {
			wait, _ := retryAfter(resp)
			return nil, &RateLimitError{Host: resp.Request.URL.Host, RetryAfter: wait, Err: e}
		}
		return nil, err
	}
	return resp, nil
}

// endpointFailed reports whether the endpoint itself failed: no response or
// a 5xx status other than 501 (not implemented is an answer, not a fault).
func endpointFailed(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented
}

// sendTo sends req to one endpoint, retrying up to MaxRetries times on
// network errors and 503 responses, and up to MaxRateLimitRetries times on
// 429 responses (rateLimitWait).
func (c *Client) sendTo(ctx context.Context, endpoint *url.URL, req request) (*http.Response, error) {
	u := endpointURL(endpoint, req.path)
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	for attempt, limited := 0, 0; ; {
		r, err := http.NewRequestWithContext(ctx, req.method, u, bodyReader(req.body))
		if err != nil {
			return nil, fmt.Errorf("kes: %w", err)
		}
		if req.body != nil {
			body := req.body
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			r.Header.Set("Content-Type", "application/json")
		}
		if req.accept != "" {
			r.Header.Set("Accept", req.accept)
		}
		resp, err := c.http.Do(r)
		if err == nil && !req.stream {
			err = bufferBody(resp)
		}
		if err != nil {
			resp = nil
			err = &ConnError{Host: endpoint.Host, Err: err}
		}
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return resp, err
		case err == nil && resp.StatusCode == http.StatusTooManyRequests:
			var ok bool
			if wait, ok = rateLimitWait(ctx, resp, limited); !ok {
				return resp, err
			}
			limited++
		case attempt == MaxRetries || !retryable(resp, err):
			return resp, err
		default:
			wait = retryDelay + rand.N(retryJitter)
			attempt++
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorSize))
			resp.Body.Close()
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, serr
		}
	}
}

// rateLimitWait returns how long to wait before repeating a request that
// was answered 429 for the limited-th time in a row: the response's
// Retry-After (retryDelay if it has none), at most MaxRetryAfter, plus up
// to a quarter more at random, so that clients limited at the same moment
// do not come back at the same moment. It reports false when the request
// is not to be repeated on this endpoint: it was MaxRateLimitRetries times
// already, or ctx ends before the wait would.
func rateLimitWait(ctx context.Context, resp *http.Response, limited int) (time.Duration, bool) {
	if limited >= MaxRateLimitRetries {
		return 0, false
	}
	wait, ok := retryAfter(resp)
	if !ok {
		wait = retryDelay
	}
	wait = min(wait, MaxRetryAfter)
	wait += rand.N(wait/4 + 1)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return 0, false
	}
	return wait, true
}

// retryAfter returns the wait a response's Retry-After header asks for: a
// number of seconds or an HTTP date (RFC 9110 §10.2.3). It reports false
// if the header is missing or invalid; a date in the past is 0.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, time.Until(t)), true
}

// bufferBody reads the body of resp into memory, at most one byte more
// than maxResponseSize (decodeJSON reports a body that large). It closes
// the body on error.
func bufferBody(resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

func bodyReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// retryable reports whether a request should be repeated on the same
// endpoint: the response was 503 or the error is a network error such as
// a timeout, a reset or an unexpected EOF. Certificate errors are not
// retried: they do not go away.
func retryable(resp *http.Response, err error) bool {
	if err == nil {
		return resp.StatusCode == http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// endpointURL joins the endpoint and the escaped path segments. As the
// upstream SDK does, an empty last segment leaves no trailing slash.
func endpointURL(endpoint *url.URL, segments []string) string {
	var b strings.Builder
	b.WriteString(endpoint.String())
	for i, s := range segments {
		if i == len(segments)-1 && s == "" {
			break
		}
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// parseErrorResponse turns a non-200 response into an [*Error]: the
// "message" (or "error") field of a JSON body, otherwise the body text.
// Legacy messages are mapped to the current error values.
func parseErrorResponse(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorSize))
	if err != nil {
		return &ConnError{Host: resp.Request.URL.Host, Err: err}
	}
	msg := strings.TrimSpace(string(body))
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		var v struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(body, &v) == nil {
			switch {
			case v.Message != "":
				msg = v.Message
			case v.Error != "":
				msg = v.Error
			}
		}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return canonical(NewError(resp.StatusCode, msg))
}

// balancer spreads requests over endpoints round-robin and parks those that
// failed. It is safe for concurrent use.
type balancer struct {
	n    int
	next atomic.Uint64
	now  func() time.Time

	mu     sync.Mutex
	parked []time.Time // zero, or when the endpoint may be tried again
}

func newBalancer(n int) *balancer {
	return &balancer{n: n, now: time.Now, parked: make([]time.Time, n)}
}

// order returns the endpoints to try, round-robin from the next start
// index: first those that are not parked, then the parked ones as a last
// resort, so that a request fails only when every endpoint failed it (an
// endpoint that was restarted is healthy again before its parking ends).
// parked marks the endpoints that were parked when order was computed.
func (b *balancer) order() (order []int, parked []bool) {
	start := int(b.next.Add(1)-1) % b.n
	now := b.now()
	parked = make([]bool, b.n)
	var last []int
	b.mu.Lock()
	for k := range b.n {
		i := (start + k) % b.n
		if now.Before(b.parked[i]) {
			parked[i] = true
			last = append(last, i)
			continue
		}
		order = append(order, i)
	}
	b.mu.Unlock()
	return append(order, last...), parked
}

func (b *balancer) park(i int) {
	b.mu.Lock()
	b.parked[i] = b.now().Add(ParkDuration)
	b.mu.Unlock()
}

// decodeJSON decodes a JSON response body of at most maxResponseSize bytes
// into v and closes the body.
func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return &ConnError{Host: resp.Request.URL.Host, Err: err}
	}
	if len(body) > maxResponseSize {
		return fmt.Errorf("kes: response of %s is larger than %d bytes", resp.Request.URL.Path, maxResponseSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("kes: invalid response of %s: %w", resp.Request.URL.Path, err)
	}
	return nil
}

// call sends req and decodes the JSON response into v, or discards the
// body if v is nil.
func (c *Client) call(ctx context.Context, req request, v any) error {
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	if v == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorSize))
		return resp.Body.Close()
	}
	return decodeJSON(resp, v)
}

// jsonBody encodes v for a request body.
func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // the wire types always encode
		panic("kes: encode request: " + err.Error())
	}
	return b
}
