package api

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 runs every request on a goroutine of its own, which starts with a
// small stack. A KES request needs a few KB of stack below the handler
// (JSON, crypto, metrics), so each one grew its new stack: runtime.newstack
// allocates a larger stack, walks and adjusts every frame and frees the old
// one, which took about 5% of the server's CPU under HTTP/2 load even when
// done once at the top of the handler (growStack). An HTTP/1.1 request runs
// on its connection's goroutine, whose stack has grown long before.
//
// stackPool hands HTTP/2 requests to a few long-lived goroutines whose
// stacks have grown already: the stream's goroutine sends the request to an
// idle worker and waits for it. The hand-off costs two goroutine switches,
// less than a stack growth (BenchmarkHandler/h2: CPU per request with and
// without the pool). When no worker is idle and the pool is full, the
// request runs on its own goroutine as before, so the pool never queues a
// request and never limits concurrency.
//
// Workers are started on demand and stop after a tick of the idle clock
// without work, so an idle server keeps none and nobody needs to stop them.
type stackPool struct {
	run     func(*h2Job) // serves a job's request
	work    chan *h2Job  // unbuffered: a send succeeds only to an idle worker
	workers atomic.Int32 // running
	max     int32
	idle    time.Duration
	jobs    sync.Pool
}

// h2Job is one request handed to a worker. It is reused.
type h2Job struct {
	s     *Server
	st    *state
	rt    *route
	rw    http.ResponseWriter
	r     *http.Request
	panic any // what the handler panicked with, re-panicked by the caller
	done  chan struct{}
}

// Pool sizes: enough workers for the requests that run at once on a busy
// server (handlers waiting for a key store keep theirs), few enough that
// their grown stacks (8 KB each, shrunk by the GC while idle) cost nothing.
const (
	stackPoolMax    = 64
	stackPoolPerCPU = 8
	stackPoolIdle   = 5 * time.Second
)

// newStackPool returns a pool whose workers serve a job with run.
func newStackPool(run func(*h2Job)) *stackPool {
	p := &stackPool{
		run:  run,
		work: make(chan *h2Job),
		max:  int32(min(stackPoolMax, stackPoolPerCPU*runtime.GOMAXPROCS(0))),
		idle: stackPoolIdle,
	}
	p.jobs.New = func() any { return &h2Job{done: make(chan struct{}, 1)} }
	return p
}

// serve runs the request on an idle worker and waits
// for it. If no worker is idle it reports false, having done nothing, and
// starts the workers that are missing (they stop when idle), so that the
// next requests find one. A panic of the handler is raised again on the
// caller's goroutine, where net/http recovers it.
func (p *stackPool) serve(s *Server, st *state, rt *route, rw http.ResponseWriter, r *http.Request) bool {
	j := p.jobs.Get().(*h2Job)
	j.s, j.st, j.rt, j.rw, j.r = s, st, rt, rw, r
	select {
	case p.work <- j:
	default:
		j.reset()
		p.jobs.Put(j)
		p.fill()
		return false
	}
	<-j.done
	v := j.panic
	j.reset()
	p.jobs.Put(j)
	if v != nil {
		panic(v)
	}
	return true
}

// fill starts workers until the pool is full.
func (p *stackPool) fill() {
	for {
		n := p.workers.Load()
		if n >= p.max {
			return
		}
		if p.workers.CompareAndSwap(n, n+1) {
			go p.worker()
		}
	}
}

// worker runs jobs until a whole tick of the idle clock passes without one
// (between one and two idle periods).
func (p *stackPool) worker() {
	defer p.workers.Add(-1)
	// The worker waits for jobs below a frame as large as a request's
	// stack: the GC shrinks a stack that is mostly unused while its
	// goroutine waits, and this one would then grow again on its next job.
	var reserve [stackReserve]byte
	touchStack(reserve[:])
	p.loop()
}

//go:noinline
func (p *stackPool) loop() {
	var j *h2Job
	tick := time.NewTicker(p.idle)
	defer tick.Stop()
	used := false
	for {
		if j != nil {
			p.runJob(j)
			j, used = nil, true
		}
		select {
		case j = <-p.work:
		case <-tick.C:
			if !used {
				return
			}
			used = false
		}
	}
}

// runJob serves j and signals its caller, also if the handler panics.
func (p *stackPool) runJob(j *h2Job) {
	defer func() {
		j.panic = recover()
		j.done <- struct{}{}
	}()
	p.run(j)
}

func (j *h2Job) reset() {
	j.s, j.st, j.rt, j.rw, j.r, j.panic = nil, nil, nil, nil, nil, nil
}
