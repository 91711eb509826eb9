package kes_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// streamServer writes lines to a log stream, then keeps it open until the
// client goes away, unless end is set.
func streamServer(t *testing.T, path string, lines []string, end bool) *kes.Client {
	t.Helper()
	srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // KES sends the headers at once
		for _, l := range lines {
			io.WriteString(w, l+"\n")
			w.(http.Flusher).Flush()
		}
		if !end {
			<-r.Context().Done()
		}
	}))
	c, _ := newTestClient(t, srv)
	return c
}

func TestAuditLog(t *testing.T) {
	c := streamServer(t, "/v1/log/audit", []string{
		`{"time":"2025-01-02T10:00:00.123456789Z","request":{"ip":"10.0.0.5","path":"/v1/key/create/my-key","identity":"` + string(testIdentity) + `"},"response":{"code":200,"time":3}}`,
		``,
		`{"time":"2025-01-02T10:00:01Z","request":{"path":"/v1/key/delete/k"},"response":{"code":404,"time":1500000}}`,
	}, false)
	stream, err := c.AuditLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []kes.AuditEvent{
		{
			Time:     time.Date(2025, 1, 2, 10, 0, 0, 123456789, time.UTC),
			Request:  kes.AuditRequest{IP: "10.0.0.5", Path: "/v1/key/create/my-key", Identity: testIdentity},
			Response: kes.AuditResponse{StatusCode: 200, Time: 3},
		},
		{
			Time:     time.Date(2025, 1, 2, 10, 0, 1, 0, time.UTC),
			Request:  kes.AuditRequest{Path: "/v1/key/delete/k"},
			Response: kes.AuditResponse{StatusCode: 404, Time: 1500 * time.Microsecond},
		},
	}
	for i, w := range want {
		if !stream.Next() {
			t.Fatalf("event %d: stream ended: %v", i, stream.Err())
		}
		if got := stream.Event(); !got.Time.Equal(w.Time) || got.Request != w.Request || got.Response != w.Response {
			t.Fatalf("event %d: got %+v, want %+v", i, got, w)
		}
	}
	// The server keeps the stream open; Close from another goroutine ends
	// the waiting Next.
	done := make(chan bool)
	go func() { done <- stream.Next() }()
	if err := stream.Close(); err != nil {
		t.Fatal(err)
	}
	if <-done {
		t.Fatal("Next returned an event after Close")
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("Err() after Close = %v, want nil", err)
	}
}

func TestErrorLog(t *testing.T) {
	c := streamServer(t, "/v1/log/error", []string{`{"message":"time=... level=ERROR msg=\"key store offline\""}`}, true)
	stream, err := c.ErrorLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	if got, want := stream.Event().Message, `time=... level=ERROR msg="key store offline"`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if stream.Next() {
		t.Fatal("got an event after the server ended the stream")
	}
	if err := stream.Err(); !errors.Is(err, io.EOF) {
		t.Fatalf("Err() = %v, want io.EOF", err)
	}
}

func TestLogStreamErrors(t *testing.T) {
	t.Run("canceled", func(t *testing.T) {
		c := streamServer(t, "/v1/log/error", nil, false)
		ctx, cancel := context.WithCancel(t.Context())
		stream, err := c.ErrorLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		cancel()
		if stream.Next() {
			t.Fatal("got an event")
		}
		if err := stream.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err() = %v, want context.Canceled", err)
		}
	})
	t.Run("invalid event", func(t *testing.T) {
		c := streamServer(t, "/v1/log/audit", []string{`{"time":`}, true)
		stream, err := c.AuditLog(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		if stream.Next() || stream.Err() == nil || errors.Is(stream.Err(), io.EOF) {
			t.Fatalf("Next accepted invalid JSON, Err() = %v", stream.Err())
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		h := &recorder{status: 403, contentType: "application/json", body: `{"message":"not authorized: insufficient permissions"}`}
		c, _ := newTestClient(t, newTLSServer(t, h))
		if _, err := c.AuditLog(t.Context()); !errors.Is(err, kes.ErrNotAllowed) {
			t.Fatalf("got %v, want ErrNotAllowed", err)
		}
	})
}
