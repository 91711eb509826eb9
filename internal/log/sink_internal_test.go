package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// gateWriter is a batchWriter whose writes wait for release and then
// either fail with err or collect the batches. If entered is not nil, a
// write sends to it, without waiting, before it waits for release.
type gateWriter struct {
	release chan struct{}
	entered chan struct{}
	err     error
	mu      sync.Mutex
	got     bytes.Buffer
	writes  int
}

func (w *gateWriter) write(_ context.Context, b []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
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

// numbered returns record i of a test: 50 bytes, "<g> <i>\n", so that a
// reader can check that nothing is lost or reordered.
func numbered(g, i int) []byte { return fmt.Appendf(nil, "%02d %046d\n", g, i) }

// checkNumbered checks that got holds, for every g below len(want), the
// records numbered(g, i) of want[g] in that order.
func checkNumbered(t *testing.T, got []byte, want [][]int) {
	t.Helper()
	next := make([]int, len(want))
	for line := range bytes.Lines(got) {
		var g, i int
		if _, err := fmt.Sscanf(string(line), "%d %d\n", &g, &i); err != nil || g < 0 || g >= len(want) {
			t.Fatalf("unexpected record %q", line)
		}
		if next[g] >= len(want[g]) || want[g][next[g]] != i {
			t.Fatalf("writer %d: record %d at position %d, want %v", g, i, next[g], want[g])
		}
		next[g]++
	}
	for g := range want {
		if next[g] != len(want[g]) {
			t.Fatalf("writer %d: %d records written, want %d", g, next[g], len(want[g]))
		}
	}
}

// seq returns the numbers from to to-1.
func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestFileSinkHungWriter checks the bound of the file sink's back-pressure:
// while its writer hangs, a request waits for it at most maxStall, later
// requests do not wait at all, and every event not queued is counted and
// reported once; when the writer continues, the sink is lossless again and
// writes what it had queued, in order.
func TestFileSinkHungWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &gateWriter{release: make(chan struct{}), entered: make(chan struct{}, 1)}
		var errLog bytes.Buffer
		s := newSink("file", true, w, slog.New(slog.NewTextHandler(&errLog, nil)), nil)
		s.limit = 1 << 10
		release := sync.OnceFunc(func() { close(w.release) })
		defer func() { release(); s.Close(context.Background()) }() // the writer ends should the test fail
		a := NewAuditLog(nil, nil, nil, s)

		s.offer(numbered(0, 0))
		<-w.entered // the writer holds record 0, and its write hangs
		for i := 1; i <= 20; i++ {
			s.offer(numbered(0, i)) // 20 records of 50 bytes fill the 1 KiB queue
		}

		// Two requests find the queue full, 3 s apart: both return when
		// the first has waited maxStall for the writer.
		start := time.Now()
		var wg sync.WaitGroup
		var waited [2]time.Duration
		wg.Go(func() { s.offer(numbered(0, 21)); waited[0] = time.Since(start) })
		time.Sleep(3 * time.Second)
		wg.Go(func() { s.offer(numbered(0, 22)); waited[1] = time.Since(start) })
		wg.Wait()
		if waited != [2]time.Duration{maxStall, maxStall} {
			t.Fatalf("offers returned after %v, want both after %v", waited, maxStall)
		}
		if n := s.Dropped(); n != 2 {
			t.Fatalf("%d events dropped, want 2", n)
		}

		// The writer is known to be hung: requests do not wait.
		start = time.Now()
		for i := 23; i < 123; i++ {
			s.offer(numbered(0, i))
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
		for i := 123; i < 223; i++ {
			s.offer(numbered(0, i))
		}
		if err := a.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := s.Dropped(); n != 112 {
			t.Fatalf("%d events dropped, want the 112 of the hang", n)
		}
		checkNumbered(t, w.got.Bytes(), [][]int{append(seq(0, 21), seq(123, 223)...)})
		if !strings.Contains(errLog.String(), `msg="audit sink: delivering again" sink=file dropped=112`) {
			t.Fatalf("error log does not report the recovery:\n%s", errLog.String())
		}
	})
}

// slowWriter is a batchWriter that takes delay for every write.
type slowWriter struct {
	delay  time.Duration
	got    bytes.Buffer
	writes int
}

func (w *slowWriter) write(_ context.Context, b []byte) (int, error) {
	time.Sleep(w.delay) // the time the disk takes, in the bubble's clock
	w.writes++
	w.got.Write(b)
	return len(b), nil
}

func (w *slowWriter) tick(time.Time) error { return nil }
func (w *slowWriter) close() error         { return nil }

// TestFileSinkSlowWriter checks that a writer that takes almost maxStall
// for every batch loses nothing under a burst that keeps the queue full:
// requests wait, none drops.
func TestFileSinkSlowWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &slowWriter{delay: maxStall - time.Second/2}
		s := newSink("file", true, w, nil, nil)
		s.limit = 1 << 10
		const writers, perWriter = 8, 100
		start := time.Now()
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range perWriter {
					s.offer(numbered(g, i))
				}
			})
		}
		wg.Wait()
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
		want := make([][]int, writers)
		for g := range want {
			want[g] = seq(0, perWriter)
		}
		checkNumbered(t, w.got.Bytes(), want)
	})
}

// TestFileSinkCloseHungWriter checks that Close gives up on a writer whose
// write never returns: after maxStall without progress, or at its
// deadline if the writer is known to be hung, and FlushInterval for the
// write to react to the abort. The queued events are counted as dropped.
func TestFileSinkCloseHungWriter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		knownHung bool          // an offer has timed out before Close
		timeout   time.Duration // of Close's ctx; 0: none
		want      time.Duration // how long Close takes
	}{
		{name: "no deadline", want: maxStall + FlushInterval},
		{name: "deadline", timeout: 2 * time.Second, want: 2*time.Second + maxStall},
		{name: "known hung, no deadline", knownHung: true, want: maxStall + FlushInterval},
		{name: "known hung, deadline", knownHung: true, timeout: 2 * time.Second, want: 2*time.Second + FlushInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &gateWriter{release: make(chan struct{}), entered: make(chan struct{}, 1)}
				s := newSink("file", true, w, nil, nil)
				s.limit = 1 << 10
				release := sync.OnceFunc(func() { close(w.release) })
				defer func() { release(); s.Close(context.Background()) }() // the writer ends should the test fail
				s.offer(numbered(0, 0))
				<-w.entered
				for i := 1; i <= 20; i++ {
					s.offer(numbered(0, i))
				}
				dropped := uint64(0)
				if tc.knownHung {
					s.offer(numbered(0, 21))
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
				if n := countLines(w.got.Bytes()); n != 1 || s.Dropped() != dropped+20 {
					t.Errorf("%d events written, %d dropped; want 1 and %d", n, s.Dropped(), dropped+20)
				}
			})
		})
	}
}
