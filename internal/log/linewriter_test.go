package log

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder records every Write call. If release is not nil, each Write
// waits for a receive from it after recording, so that a test controls
// when a write in progress ends.
type recorder struct {
	release chan struct{}
	gosched bool // yield inside Write, to widen the race window

	mu     sync.Mutex
	writes []string
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, string(p))
	r.mu.Unlock()
	if r.release != nil {
		<-r.release
	}
	if r.gosched {
		runtime.Gosched()
	}
	return len(p), nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

func checkWrites(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	if got := r.got(); !slices.Equal(got, want) {
		t.Fatalf("writes %q, want %q", got, want)
	}
}

// goWrite calls lw.write(line) in a new goroutine and returns a flag that
// is set when the call returns.
func goWrite(lw *lineWriter, line string) *atomic.Bool {
	done := new(atomic.Bool)
	go func() {
		lw.write([]byte(line))
		done.Store(true)
	}()
	return done
}

func TestLineWriterIdleWritesAtOnce(t *testing.T) {
	var r recorder
	lw := newLineWriter(&r)
	lw.write([]byte("one\n"))
	checkWrites(t, &r, "one\n")
	lw.write([]byte("two\nthree\n"))
	checkWrites(t, &r, "one\n", "two\nthree\n")
}

func TestLineWriterCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recorder{release: make(chan struct{})}
		lw := newLineWriter(&r)

		first := goWrite(lw, "a\n")
		synctest.Wait() // first is inside Write
		lw.write([]byte("b\n"))
		lw.write([]byte("c\n"))
		checkWrites(t, &r, "a\n") // b and c wait for the write in progress

		r.release <- struct{}{} // a is written; the batch b, c is next
		synctest.Wait()
		checkWrites(t, &r, "a\n", "b\nc\n")
		if first.Load() {
			t.Fatal("the writer of a returned before writing the lines queued behind it")
		}
		r.release <- struct{}{}
		synctest.Wait()
		if !first.Load() {
			t.Fatal("the writer of a did not return after the queue was written")
		}
		last := goWrite(lw, "d\n") // idle again: written at once
		synctest.Wait()
		checkWrites(t, &r, "a\n", "b\nc\n", "d\n")
		r.release <- struct{}{}
		synctest.Wait()
		if !last.Load() {
			t.Fatal("the writer of d did not return")
		}
	})
}

func TestLineWriterBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recorder{release: make(chan struct{})}
		lw := newLineWriter(&r)
		lw.limit = 10

		goWrite(lw, "a\n")
		synctest.Wait()
		lw.write([]byte("0123456\n")) // 8 bytes pending
		full := goWrite(lw, "xyz\n")  // 12 > 10: waits
		synctest.Wait()
		if full.Load() {
			t.Fatal("write returned although the pending lines were over the limit")
		}

		r.release <- struct{}{} // a written; the pending batch is taken
		synctest.Wait()
		if !full.Load() {
			t.Fatal("write still waits after the pending lines were taken")
		}
		// A line longer than the limit is taken when nothing is pending
		// (xyz is being written).
		r.release <- struct{}{}
		synctest.Wait()
		long := strings.Repeat("x", 20) + "\n"
		lw.write([]byte(long))
		r.release <- struct{}{}
		r.release <- struct{}{}
		synctest.Wait()
		checkWrites(t, &r, "a\n", "0123456\n", "xyz\n", long)
	})
}

func TestLineWriterHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recorder{release: make(chan struct{})}
		lw := newLineWriter(&r)

		leader := goWrite(lw, "l0\n")
		synctest.Wait()
		want := []string{"l0\n"}
		for i := 1; i <= maxLeadRounds; i++ {
			line := "l" + strconv.Itoa(i) + "\n"
			lw.write([]byte(line)) // queued: returns at once
			r.release <- struct{}{}
			synctest.Wait() // the leader writes the batch and waits in Write
			want = append(want, line)
		}
		checkWrites(t, &r, want...)

		// The leader has written maxLeadRounds batches: the next caller
		// waits for the write in progress and takes over.
		successor := goWrite(lw, "s1\n")
		synctest.Wait()
		if successor.Load() {
			t.Fatal("the successor returned without taking over")
		}
		lw.write([]byte("s2\n")) // a successor is waiting: queued
		r.release <- struct{}{}
		synctest.Wait()
		if !leader.Load() {
			t.Fatal("the leader did not hand over")
		}
		if successor.Load() {
			t.Fatal("the successor returned before writing its batch")
		}
		checkWrites(t, &r, append(want, "s1\ns2\n")...)
		r.release <- struct{}{}
		synctest.Wait()
		if !successor.Load() {
			t.Fatal("the successor did not return")
		}
	})
}

func TestLineWriterFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := recorder{release: make(chan struct{})}
		lw := newLineWriter(&r)
		lw.flush() // idle: returns at once

		goWrite(lw, "a\n")
		synctest.Wait()
		lw.write([]byte("b\n"))
		flushed := new(atomic.Bool)
		go func() { lw.flush(); flushed.Store(true) }()
		synctest.Wait()
		if flushed.Load() {
			t.Fatal("flush returned while lines were pending")
		}
		r.release <- struct{}{}
		r.release <- struct{}{}
		synctest.Wait()
		if !flushed.Load() {
			t.Fatal("flush did not return after every line was written")
		}
		checkWrites(t, &r, "a\n", "b\n")
	})
}

// TestLineWriterStress has many goroutines write numbered lines of many
// lengths, with a small pending limit, while others flush, and checks that
// every write call carries whole lines and every line arrives exactly once,
// whole, and in the order its goroutine wrote it.
func TestLineWriterStress(t *testing.T) {
	const goroutines, perGoroutine = 16, 1000
	r := recorder{gosched: true}
	lw := newLineWriter(&r)
	lw.limit = 512

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				lw.write([]byte(stressLine(g, i)))
				if i%100 == 0 {
					lw.flush()
				}
			}
		})
	}
	wg.Wait()
	lw.flush()

	next := make([]int, goroutines)
	writes := r.got()
	for _, w := range writes {
		if !strings.HasSuffix(w, "\n") {
			t.Fatalf("write call %q does not end a line", w)
		}
		for line := range strings.Lines(w) {
			var g, i int
			if _, err := fmt.Sscanf(line, "g=%d i=%d ", &g, &i); err != nil || g < 0 || g >= goroutines {
				t.Fatalf("broken line %q: %v", line, err)
			}
			if want := stressLine(g, i); line != want {
				t.Fatalf("line %q, want %q", line, want)
			}
			if i != next[g] {
				t.Fatalf("goroutine %d: line %d arrived when %d was due", g, i, next[g])
			}
			next[g]++
		}
	}
	for g, n := range next {
		if n != perGoroutine {
			t.Errorf("goroutine %d: %d lines arrived, want %d", g, n, perGoroutine)
		}
	}
	t.Logf("%d lines in %d write calls", goroutines*perGoroutine, len(writes))
}

// stressLine returns line i of goroutine g, of a length between 16 and
// about 320 bytes.
func stressLine(g, i int) string {
	return fmt.Sprintf("g=%d i=%d pad=%s end\n", g, i, strings.Repeat("x", (g*7+i*13)%300))
}

// TestAuditLogConcurrentLines logs distinct events from many goroutines and
// checks that the console holds each one's slog line exactly once.
func TestAuditLogConcurrentLines(t *testing.T) {
	const goroutines, perGoroutine = 8, 300
	r := recorder{gosched: true}
	a := NewAuditLog(&r, nil, nil)
	at := time.Date(2026, 11, 27, 15, 52, 25, 928123456, time.UTC)

	want := make(map[string]int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				ev := AuditEvent{Time: at, Method: "GET", Path: fmt.Sprintf("/v1/key/describe/k %d-%d", g, i), Status: 200}
				a.Log(ev)
				mu.Lock()
				want[slogAuditLine(t, &ev)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	a.Flush()

	var out bytes.Buffer
	for _, w := range r.got() {
		out.WriteString(w)
	}
	for line := range strings.Lines(out.String()) {
		if want[line] != 1 {
			t.Fatalf("line %q printed unexpectedly (%d left to print)", line, want[line])
		}
		delete(want, line)
	}
	if len(want) != 0 {
		t.Errorf("%d lines were not printed", len(want))
	}
}
