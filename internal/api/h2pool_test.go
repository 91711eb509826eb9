package api

import (
	"testing"
	"testing/synctest"
	"time"
)

// testPool returns a pool of at most max workers whose jobs call run with
// the job's request path (the tests put their marker there).
func testPool(max int32, run func(*h2Job)) *stackPool {
	p := newStackPool(run)
	p.max = max
	return p
}

// idleOut waits until p's idle workers have stopped, as a bubble must end
// with no goroutine left.
func idleOut(t *testing.T, p *stackPool) {
	t.Helper()
	time.Sleep(2*p.idle + time.Second)
	synctest.Wait()
	if n := p.workers.Load(); n != 0 {
		t.Fatalf("workers after %v idle: %d, want 0", 2*p.idle, n)
	}
}

func TestStackPoolServesOnWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ran := 0
		p := testPool(2, func(*h2Job) { ran++ })
		if p.serve(nil, nil, nil, nil, nil) {
			t.Fatal("served with no worker running")
		}
		synctest.Wait() // the workers started by the miss are idle now
		if n := p.workers.Load(); n != 2 {
			t.Fatalf("workers after the first miss: %d, want 2", n)
		}
		for range 10 {
			if !p.serve(nil, nil, nil, nil, nil) {
				t.Fatal("an idle worker did not take the job")
			}
			synctest.Wait()
		}
		if ran != 10 {
			t.Fatalf("ran %d jobs, want 10", ran)
		}
		idleOut(t, p)
	})
}

// A busy pool never queues: the request runs on its own goroutine.
func TestStackPoolFullRunsInline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		p := testPool(1, func(*h2Job) { <-release })
		p.fill()
		synctest.Wait()
		served := make(chan bool)
		go func() { served <- p.serve(nil, nil, nil, nil, nil) }()
		synctest.Wait() // the only worker is blocked in the first job
		start := time.Now()
		if p.serve(nil, nil, nil, nil, nil) {
			t.Fatal("a full pool took a second job")
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("a miss waited %v", d)
		}
		close(release)
		if !<-served {
			t.Fatal("the first job was not served")
		}
		idleOut(t, p)
	})
}

// A panic of the handler reaches the caller, as if the handler had run on
// the caller's goroutine (net/http recovers it there), and the worker
// lives on.
func TestStackPoolPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPool(1, func(j *h2Job) {
			if j.rt != nil {
				panic("boom")
			}
		})
		p.fill()
		synctest.Wait()
		got := func() (v any) {
			defer func() { v = recover() }()
			p.serve(nil, nil, &route{}, nil, nil)
			return nil
		}()
		if got != "boom" {
			t.Fatalf("caller recovered %v, want boom", got)
		}
		synctest.Wait()
		if n := p.workers.Load(); n != 1 {
			t.Fatalf("workers after a panic: %d, want 1", n)
		}
		if !p.serve(nil, nil, nil, nil, nil) {
			t.Fatal("the worker did not serve after a panic")
		}
		idleOut(t, p)
	})
}

// Idle workers stop: an idle server keeps no goroutine of the pool.
func TestStackPoolIdleWorkersStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPool(4, func(*h2Job) {})
		p.fill()
		synctest.Wait()
		if n := p.workers.Load(); n != 4 {
			t.Fatalf("workers: %d, want 4", n)
		}
		// A worker that gets a job every half idle period stays; the
		// pool shrinks to what the load needs.
		for range 6 {
			time.Sleep(p.idle / 2)
			synctest.Wait() // the workers have seen their ticks
			if !p.serve(nil, nil, nil, nil, nil) {
				t.Fatal("no idle worker")
			}
		}
		if n := p.workers.Load(); n < 1 || n >= 4 {
			t.Fatalf("workers after a job every %v: %d, want 1 to 3", p.idle/2, n)
		}
		idleOut(t, p)
	})
}
