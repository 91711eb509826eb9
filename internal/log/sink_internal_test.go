package log

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// gateWriter is a batchWriter whose writes wait for release and then
// either fail with err or collect the batches.
type gateWriter struct {
	release chan struct{}
	err     error
	mu      sync.Mutex
	got     bytes.Buffer
	writes  int
}

func (w *gateWriter) write(_ context.Context, b []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.err != nil {
		return 0, w.err
	}
	w.got.Write(b)
	return len(b), nil
}

func (w *gateWriter) tick(time.Time) error { return nil }
func (w *gateWriter) close() error         { return nil }

// TestFileSinkBackPressure checks that a blocking sink whose queue is full
// makes the logging caller wait instead of dropping, and writes every
// event once the writer continues.
func TestFileSinkBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &gateWriter{release: make(chan struct{})}
		s := newSink("file", true, w, nil, nil)
		s.limit = 1 << 10
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 100 {
				s.offer([]byte(strings.Repeat("x", 49) + "\n"))
			}
		}()
		time.Sleep(time.Second) // the writer has taken a batch and waits for release
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("100 events of 50 bytes fit into a 1 KiB queue and a blocked writer's batch")
		default:
		}
		if n := s.Dropped(); n != 0 {
			t.Fatalf("%d events dropped", n)
		}
		close(w.release)
		<-done
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := countLines(w.got.Bytes()); n != 100 || s.Dropped() != 0 {
			t.Fatalf("%d events written, %d dropped; want 100 and 0", n, s.Dropped())
		}
	})
}

// TestSinkDropsWhenFull checks that a dropping sink (syslog) whose writer
// is stuck never makes the caller wait, and counts what it drops.
func TestSinkDropsWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &gateWriter{release: make(chan struct{})}
		s := newSink("syslog", false, w, nil, nil)
		s.limit = 1 << 10
		for range 100 {
			s.offer([]byte(strings.Repeat("x", 49) + "\n")) // returns at once: no goroutine needed
		}
		if s.Dropped() == 0 {
			t.Fatal("nothing dropped")
		}
		close(w.release)
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := uint64(countLines(w.got.Bytes())); n+s.Dropped() != 100 {
			t.Fatalf("%d written + %d dropped != 100", n, s.Dropped())
		}
	})
}

// TestSinkWriteErrors checks that failed writes count their events as
// dropped and are reported to the error log at most every 10 s.
func TestSinkWriteErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &gateWriter{release: make(chan struct{}), err: errors.New("disk full")}
		close(w.release)
		var errLog bytes.Buffer
		s := newSink("file", true, w, slog.New(slog.NewTextHandler(&errLog, nil)), nil)
		for range 5 {
			s.offer([]byte("{}\n"))
			time.Sleep(FlushInterval) // one failed write each
			synctest.Wait()
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.Dropped() != 5 || w.writes != 5 {
			t.Fatalf("%d dropped in %d writes, want 5 and 5", s.Dropped(), w.writes)
		}
		if n := strings.Count(errLog.String(), `msg="audit sink: events lost" sink=file err="disk full"`); n != 1 {
			t.Fatalf("error log has %d reports of 5 failures within 10 s, want 1:\n%s", n, errLog.String())
		}
	})
}
