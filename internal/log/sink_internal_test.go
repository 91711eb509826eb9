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

// TestFileSinkBackPressure checks that a blocking sink whose queue is full
// makes the logging caller wait instead of dropping, and writes every
// event once the writer continues.
func TestFileSinkBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &testWriter{release: make(chan struct{})}
		s := smallSink("file", w, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for seq := range 100 {
				s.offer(record(0, seq))
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
		if s.Dropped() != 0 {
			t.Fatalf("%d events dropped", s.Dropped())
		}
		checkSequences(t, w.records(), "", 1, 100)
	})
}

// TestSinkDropsWhenFull checks that a dropping sink (syslog) whose writer
// is stuck never makes the caller wait, and counts what it drops.
func TestSinkDropsWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &testWriter{release: make(chan struct{})}
		s := smallSink("syslog", w, nil)
		for seq := range 100 {
			s.offer(record(0, seq)) // returns at once: no goroutine needed
		}
		if s.Dropped() == 0 {
			t.Fatal("nothing dropped")
		}
		close(w.release)
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := uint64(len(w.records())); n+s.Dropped() != 100 {
			t.Fatalf("%d written + %d dropped != 100", n, s.Dropped())
		}
	})
}

// TestSinkWriteErrors checks that failed writes count their events as
// dropped and are reported to the error log at most every 10 s.
func TestSinkWriteErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &testWriter{err: errors.New("disk full")}
		var errLog bytes.Buffer
		s := newSink("file", true, w, slog.New(slog.NewTextHandler(&errLog, nil)), nil)
		for seq := range 5 {
			s.offer(record(0, seq))
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

// hungSink returns a file sink with a 1 KiB queue whose writer hangs in
// the write of record(0, 0) until release is called, and whose queue is
// full: it holds record(0, 1) to record(0, 20). When the test ends, the
// writer is released and the sink closed.
func hungSink(t *testing.T, errLog *slog.Logger) (s *Sink, w *testWriter, release func()) {
	t.Helper()
	w = &testWriter{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	s = smallSink("file", w, errLog)
	release = sync.OnceFunc(func() { close(w.release) })
	t.Cleanup(func() { release(); s.Close(context.Background()) })
	s.offer(record(0, 0))
	<-w.entered
	for seq := 1; seq <= 20; seq++ {
		s.offer(record(0, seq)) // 20 records of 50 bytes fill the 1 KiB queue
	}
	return s, w, release
}

// TestFileSinkHungWriter checks the bound of the file sink's back-pressure:
// while its writer hangs, a request waits for it at most maxStall, later
// requests do not wait at all, and every event not queued is counted and
// reported once; when the writer continues, the sink is lossless again and
// writes what it had queued, in order.
func TestFileSinkHungWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var errLog bytes.Buffer
		s, w, release := hungSink(t, slog.New(slog.NewTextHandler(&errLog, nil)))
		a := NewAuditLog(nil, nil, nil, s)

		// Two requests find the queue full, 3 s apart: both return when
		// the first has waited maxStall for the writer. (Writer 1's
		// records are all dropped.)
		start := time.Now()
		var wg sync.WaitGroup
		var waited [2]time.Duration
		wg.Go(func() { s.offer(record(1, 0)); waited[0] = time.Since(start) })
		time.Sleep(3 * time.Second)
		wg.Go(func() { s.offer(record(1, 1)); waited[1] = time.Since(start) })
		wg.Wait()
		if waited != [2]time.Duration{maxStall, maxStall} {
			t.Fatalf("offers returned after %v, want both after %v", waited, maxStall)
		}
		if n := s.Dropped(); n != 2 {
			t.Fatalf("%d events dropped, want 2", n)
		}

		// The writer is known to be hung: requests do not wait.
		start = time.Now()
		for seq := 2; seq < 102; seq++ {
			s.offer(record(1, seq))
		}
		for range 10 {
			a.Log(AuditEvent{Method: "GET", Path: "/v1/status", Status: 200})
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("110 events logged to a hung writer took %v, want no wait", d)
		}
		if n := s.Dropped(); n != 112 {
			t.Fatalf("%d events dropped, want 112", n)
		}
		synctest.Wait()
		if n := strings.Count(errLog.String(), `msg="audit sink: events lost" sink=file err="log: audit sink: the writer made no progress for 5s" dropped=1`); n != 1 {
			t.Fatalf("error log has %d reports of the drops, want 1:\n%s", n, errLog.String())
		}

		// The writer continues: it writes the queue, and back-pressure
		// holds again.
		release()
		synctest.Wait()
		for seq := 21; seq < 121; seq++ {
			s.offer(record(0, seq))
		}
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := s.Dropped(); n != 112 {
			t.Fatalf("%d events dropped, want the 112 of the hang", n)
		}
		checkSequences(t, w.records(), "", 1, 121)
		if !strings.Contains(errLog.String(), `msg="audit sink: delivering again" sink=file dropped=112`) {
			t.Fatalf("error log does not report the recovery:\n%s", errLog.String())
		}
	})
}

// TestFileSinkSlowWriter checks that a writer that takes almost maxStall
// for every batch loses nothing under a burst that keeps the queue full:
// requests wait, none drops.
func TestFileSinkSlowWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &testWriter{delay: maxStall - time.Second/2}
		s := smallSink("file", w, nil)
		const writers, perWriter = 8, 100
		start := time.Now()
		runWriters(writers, perWriter, func(w, seq int) { s.offer(record(w, seq)) })
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := s.Dropped(); n != 0 {
			t.Fatalf("%d events dropped", n)
		}
		// 800 records of 50 bytes through a 1 KiB queue: at least 40 writes.
		if w.writes < 40 || time.Since(start) < 40*w.delay {
			t.Fatalf("%d writes in %v: the queue was not bounded", w.writes, time.Since(start))
		}
		checkSequences(t, w.records(), "", writers, perWriter)
	})
}

// TestFileSinkCloseHungWriter checks that Close gives up on a writer whose
// write never returns once it has made no progress for maxStall, whether
// or not ctx has a deadline, after giving the write FlushInterval to react
// to the abort. The queued events are counted as dropped.
func TestFileSinkCloseHungWriter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		knownHung bool          // an offer has waited maxStall before Close
		timeout   time.Duration // of Close's ctx; 0: none
		want      time.Duration // how long Close takes
	}{
		{name: "no deadline", want: maxStall + FlushInterval},
		{name: "deadline", timeout: 2 * time.Second, want: maxStall},
		{name: "known hung, no deadline", knownHung: true, want: FlushInterval},
		{name: "known hung, deadline", knownHung: true, timeout: 2 * time.Second, want: FlushInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, w, release := hungSink(t, nil)
				dropped := uint64(0)
				if tc.knownHung {
					s.offer(record(0, 21))
					dropped = 1
				}
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				start := time.Now()
				err := s.Close(ctx)
				if d := time.Since(start); d != tc.want {
					t.Errorf("Close took %v, want %v", d, tc.want)
				}
				if !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "20 events not delivered at shutdown, 1 more in a write that has not returned") {
					t.Errorf("Close: %v, want the 20 queued events and the one in the write not delivered", err)
				}
				if n := s.Dropped(); n != dropped+20 {
					t.Errorf("%d events dropped, want %d", n, dropped+20)
				}
				release() // the write returns at last: the writer ends
				<-s.done
				if s.Dropped() != dropped+20 {
					t.Errorf("%d dropped after the write returned, want %d", s.Dropped(), dropped+20)
				}
				checkSequences(t, w.records(), "", 1, 1)
			})
		})
	}
}
