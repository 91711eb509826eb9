package kes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// maxEventSize bounds one line of a log stream.
const maxEventSize = 1 << 20

// Stream is a stream of log events of type E ([AuditEvent] or [ErrorEvent])
// read from a server, as returned by [Client.AuditLog] and [Client.ErrorLog].
// Only events produced after the stream was opened are delivered.
//
//	for stream.Next() {
//		e := stream.Event()
//		...
//	}
//	if err := stream.Err(); err != nil { ... }
//
// Next, Event and Err must be called from one goroutine; Close may be called
// from any goroutine to end a Next that waits for the server.
type Stream[E any] struct {
	body    io.ReadCloser
	scanner *bufio.Scanner
	ctx     context.Context
	event   E
	err     error

	closeOnce sync.Once
	closed    chan struct{}
}

func newStream[E any](ctx context.Context, body io.ReadCloser) *Stream[E] {
	s := bufio.NewScanner(body)
	s.Buffer(make([]byte, 0, 4096), maxEventSize)
	return &Stream[E]{body: body, scanner: s, ctx: ctx, closed: make(chan struct{})}
}

// Next waits for the next event and reports whether there is one. It
// returns false when the stream ends, fails, is closed or its context is
// canceled; Err then tells why.
func (s *Stream[E]) Next() bool {
	if s.err != nil {
		return false
	}
	for s.scanner.Scan() {
		line := s.scanner.Bytes()
		if len(line) == 0 {
			continue
		}
		var e E
		if err := json.Unmarshal(line, &e); err != nil {
			s.err = fmt.Errorf("kes: invalid log event: %w", err)
			return false
		}
		s.event = e
		return true
	}
	select {
	case <-s.closed:
		s.err = nil
		return false
	default:
	}
	switch err := s.scanner.Err(); {
	case s.ctx.Err() != nil:
		s.err = context.Cause(s.ctx)
	case errors.Is(err, bufio.ErrTooLong):
		s.err = fmt.Errorf("kes: log event larger than %d bytes", maxEventSize)
	case err != nil:
		s.err = &ConnError{Err: err}
	default:
		s.err = io.EOF
	}
	return false
}

// Event returns the event that the last successful Next read.
func (s *Stream[E]) Event() E { return s.event }

// Err returns the error that ended the stream: nil if it was closed, io.EOF
// if the server ended it, the context's error if it was canceled.
func (s *Stream[E]) Err() error { return s.err }

// Close ends the stream and releases its connection.
func (s *Stream[E]) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.body.Close()
	})
	return err
}

// AuditLog opens the audit log stream of a server. Close the returned
// stream when done.
func (c *Client) AuditLog(ctx context.Context) (*Stream[AuditEvent], error) {
	return openStream[AuditEvent](ctx, c, "audit")
}

// ErrorLog opens the error log stream of a server. Close the returned
// stream when done.
func (c *Client) ErrorLog(ctx context.Context) (*Stream[ErrorEvent], error) {
	return openStream[ErrorEvent](ctx, c, "error")
}

func openStream[E any](ctx context.Context, c *Client, kind string) (*Stream[E], error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: []string{"v1", "log", kind}, stream: true})
	if err != nil {
		return nil, err
	}
	return newStream[E](ctx, resp.Body), nil
}
