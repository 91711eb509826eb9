package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SoakOp is an operation of the soak load.
type SoakOp int

// The soak operations, in the mix MinIO sends: mostly data keys for
// objects written and read, some describes (MinIO checks its key), rare
// lists, and keys created (and deleted again, so that their number stays
// bounded) as buckets come and go.
const (
	SoakGenerate SoakOp = iota
	SoakDecrypt
	SoakDescribe
	SoakList
	SoakCreate
	SoakDelete
	numSoakOps
)

var soakOpNames = [numSoakOps]string{"generate", "decrypt", "describe", "list", "create", "delete"}

func (op SoakOp) String() string { return soakOpNames[op] }

// soakWeights are the per-mille shares of the operations; a delete is sent
// instead of a create once a worker holds soakOwnKeys keys.
var soakWeights = [numSoakOps]int{SoakGenerate: 440, SoakDecrypt: 440, SoakDescribe: 60, SoakList: 20, SoakCreate: 40}

// Soak load constants.
const (
	soakBaseKeys = 8 // keys every worker generates and decrypts with
	soakOwnKeys  = 4 // keys a worker creates before it deletes its oldest
	soakMaxErrs  = 5 // error messages kept for the report
	// soakWarmup is the longest warm-up, the part of the load in which the
	// heap grows to its working size (about 10 s in a 60 s run at 300/s);
	// shorter runs warm up for a third of their duration.
	soakWarmup = 15 * time.Second
)

// SoakOptions configure [Soak]. KES and Dir are required; zero values of
// the other fields mean the defaults of "kesload soak".
type SoakOptions struct {
	KES      string        // the kes binary
	Dir      string        // work directory; must exist
	Duration time.Duration // how long the load runs; zero means 60 s
	Clients  int           // concurrent clients, half HTTP/1.1, half HTTP/2; zero means 16
	Rate     int           // requests per second of all clients; zero means 500, negative unthrottled
	Sample   time.Duration // interval of the RSS, fd and goroutine samples; zero means 1 s
	Log      io.Writer     // progress lines; nil means none
}

func (o SoakOptions) withDefaults() (SoakOptions, error) {
	if o.Duration == 0 {
		o.Duration = time.Minute
	}
	if o.Clients == 0 {
		o.Clients = 16
	}
	if o.Rate == 0 {
		o.Rate = 500
	}
	if o.Sample == 0 {
		o.Sample = time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	switch {
	case o.KES == "" || o.Dir == "":
		return o, errors.New("kesload: soak needs the kes binary and a work directory")
	case o.Duration < 0 || o.Duration > 24*time.Hour:
		return o, fmt.Errorf("kesload: soak duration %v out of range (0, 24h]", o.Duration)
	case o.Clients < 2 || o.Clients > maxClients:
		return o, fmt.Errorf("kesload: clients %d out of range [2, %d]", o.Clients, maxClients)
	case o.Sample < 10*time.Millisecond:
		return o, fmt.Errorf("kesload: sample interval %v below 10ms", o.Sample)
	}
	return o, nil
}

// soakKey is a key the load generates and decrypts with, and a data key
// that the server generated under it.
type soakKey struct {
	name      string
	decBody   []byte // {"ciphertext":...,"context":...}
	plaintext []byte
	genBody   []byte // {"context":...}
}

// soakRun is one soak: the server, its keys and the counters.
type soakRun struct {
	opts    SoakOptions
	srv     *child
	base    string // https://127.0.0.1:port
	creds   *credentials
	keys    []*soakKey
	counts  [numSoakOps]atomic.Int64
	errs    atomic.Int64
	errMu   sync.Mutex
	errMsgs []string
}

// Soak starts a kes server with an fs key store, measures it idle, drives
// the mixed load for the duration while sampling it, closes the clients'
// connections and waits (up to settleTimeout) for the server's goroutines
// and file descriptors to return to their idle counts. The report holds
// the figures; [SoakReport.Check] judges them.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &soakRun{opts: o}
	if r.creds, err = newCredentials(o.Dir); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sess := &Session{opts: Options{KES: o.KES, Dir: o.Dir}, creds: r.creds}
	if r.srv, err = sess.spawnKES("kes-soak", o.KES, addr, AuditNull, ""); err != nil {
		return nil, err
	}
	defer r.srv.Stop()
	r.base = "https://" + addr
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	rep := &SoakReport{Duration: o.Duration, Warmup: min(o.Duration/3, soakWarmup), Clients: o.Clients, Rate: o.Rate}
	if rep.Idle, err = r.idle(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "soak: idle: %s; load for %v\n", rep.Idle, o.Duration)
	if err := r.load(ctx, rep); err != nil {
		return nil, err
	}
	if rep.After, err = r.settle(ctx, rep.Idle); err != nil {
		return nil, err
	}
	for op := range numSoakOps {
		rep.Requests[op] = r.counts[op].Load()
	}
	rep.Errors, rep.ErrorMessages = r.errs.Load(), r.errMsgs
	return rep, nil
}

// setup waits until the server is ready, creates the base keys and makes
// one data key under each.
func (r *soakRun) setup(ctx context.Context) error {
	hc := newSetupClient(r.creds)
	defer hc.CloseIdleConnections()
	if err := r.srv.waitReady(ctx, func(ctx context.Context) error {
		_, err := call(ctx, hc, http.MethodGet, r.base+"/v1/ready", nil)
		return err
	}); err != nil {
		return err
	}
	for i := range soakBaseKeys {
		k := &soakKey{name: "soak-" + strconv.Itoa(i)}
		if _, err := call(ctx, hc, http.MethodPost, r.base+"/v1/key/create/"+k.name, nil); err != nil {
			return err
		}
		assoc := make([]byte, 40)
		rand.Read(assoc)
		k.genBody, _ = json.Marshal(map[string][]byte{"context": assoc})
		reply, err := call(ctx, hc, http.MethodPost, r.base+"/v1/key/generate/"+k.name, k.genBody)
		if err != nil {
			return err
		}
		var gen struct{ Plaintext, Ciphertext []byte }
		if err := json.Unmarshal(reply, &gen); err != nil || len(gen.Plaintext) != 32 {
			return fmt.Errorf("soak: bad generate reply (%d bytes, %v)", len(reply), err)
		}
		k.plaintext = gen.Plaintext
		k.decBody, _ = json.Marshal(map[string][]byte{"ciphertext": gen.Ciphertext, "context": assoc})
		r.keys = append(r.keys, k)
	}
	return nil
}

// load runs the workers for the duration and samples the server meanwhile.
func (r *soakRun) load(ctx context.Context, rep *SoakReport) error {
	h1 := newLoadClient(HTTP1, r.opts.Clients/2, r.creds.clientTLS())
	h2 := newLoadClient(HTTP2, r.opts.Clients-r.opts.Clients/2, r.creds.clientTLS())
	defer h1.Close()
	defer h2.Close()
	workers := slices.Concat(h1.workers, h2.workers)

	ctx, cancel := context.WithTimeout(ctx, r.opts.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w, hc := range workers {
		wg.Go(func() { r.worker(ctx, w, hc) })
	}
	sampleErr := r.sample(ctx, start, rep)
	wg.Wait()
	rep.Elapsed = time.Since(start)
	return sampleErr
}

// sample records the server's RSS, fds and goroutines every Sample
// interval until ctx ends.
func (r *soakRun) sample(ctx context.Context, start time.Time, rep *SoakReport) error {
	tick := time.NewTicker(r.opts.Sample)
	defer tick.Stop()
	next := time.Now().Add(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		m, err := r.measure(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the load ended during the scrape
			}
			return err
		}
		rep.Samples = append(rep.Samples, SoakSample{At: time.Since(start), Measure: m})
		if time.Now().After(next) {
			next = next.Add(time.Minute)
			fmt.Fprintf(r.opts.Log, "soak: %v: %s, %d requests, %d errors\n",
				time.Since(start).Round(time.Second), m, r.total(), r.errs.Load())
		}
	}
}

// total returns the number of requests sent so far.
func (r *soakRun) total() int64 {
	var n int64
	for op := range numSoakOps {
		n += r.counts[op].Load()
	}
	return n
}

// worker sends the mix until ctx ends, paced to its share of the rate.
func (r *soakRun) worker(ctx context.Context, w int, hc *http.Client) {
	rnd := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	var pace <-chan time.Time
	if r.opts.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) * float64(r.opts.Clients) / float64(r.opts.Rate)))
		defer t.Stop()
		pace = t.C
	}
	var own []string // keys this worker created, oldest first
	for i := 0; ; i++ {
		if pace != nil {
			select {
			case <-ctx.Done():
				return
			case <-pace:
			}
		}
		if ctx.Err() != nil {
			return
		}
		op := pickSoakOp(rnd)
		if op == SoakCreate && len(own) >= soakOwnKeys {
			op = SoakDelete
		}
		name := ""
		switch op {
		case SoakCreate:
			name = fmt.Sprintf("own-%d-%d", w, i)
		case SoakDelete:
			name = own[0]
		}
		err := r.send(ctx, hc, rnd, op, name)
		if ctx.Err() != nil {
			return // a request cut by the end of the run does not count
		}
		r.counts[op].Add(1)
		if err != nil {
			r.fail(err)
			continue
		}
		switch op {
		case SoakCreate:
			own = append(own, name)
		case SoakDelete:
			own = own[1:]
		}
	}
}

func pickSoakOp(rnd *mrand.Rand) SoakOp {
	n := rnd.IntN(1000)
	for op, w := range soakWeights {
		if n < w {
			return SoakOp(op)
		}
		n -= w
	}
	return SoakGenerate
}

// send sends one request of op and checks its answer.
func (r *soakRun) send(ctx context.Context, hc *http.Client, rnd *mrand.Rand, op SoakOp, name string) error {
	k := r.keys[rnd.IntN(len(r.keys))]
	switch op {
	case SoakGenerate:
		reply, err := call(ctx, hc, http.MethodPost, r.base+"/v1/key/generate/"+k.name, k.genBody)
		if err != nil {
			return err
		}
		var gen struct{ Plaintext, Ciphertext []byte }
		if err := json.Unmarshal(reply, &gen); err != nil || len(gen.Plaintext) != 32 || len(gen.Ciphertext) == 0 {
			return fmt.Errorf("generate %s: bad reply (%d bytes, %v)", k.name, len(reply), err)
		}
	case SoakDecrypt:
		reply, err := call(ctx, hc, http.MethodPost, r.base+"/v1/key/decrypt/"+k.name, k.decBody)
		if err != nil {
			return err
		}
		var dec struct{ Plaintext []byte }
		if err := json.Unmarshal(reply, &dec); err != nil || subtle.ConstantTimeCompare(dec.Plaintext, k.plaintext) != 1 {
			return fmt.Errorf("decrypt %s: not the generated plaintext (%v)", k.name, err)
		}
	case SoakDescribe:
		reply, err := call(ctx, hc, http.MethodGet, r.base+"/v1/key/describe/"+k.name, nil)
		if err != nil {
			return err
		}
		var d struct{ Name string }
		if err := json.Unmarshal(reply, &d); err != nil || d.Name != k.name {
			return fmt.Errorf("describe %s: bad reply %.200s", k.name, reply)
		}
	case SoakList:
		reply, err := call(ctx, hc, http.MethodGet, r.base+"/v1/key/list/soak", nil)
		if err != nil {
			return err
		}
		var l struct{ Names []string }
		if err := json.Unmarshal(reply, &l); err != nil || len(l.Names) != soakBaseKeys {
			return fmt.Errorf("list: %d names, want %d (%v)", len(l.Names), soakBaseKeys, err)
		}
	case SoakCreate:
		_, err := call(ctx, hc, http.MethodPost, r.base+"/v1/key/create/"+name, nil)
		return err
	case SoakDelete:
		_, err := call(ctx, hc, http.MethodDelete, r.base+"/v1/key/delete/"+name, nil)
		return err
	}
	return nil
}

// fail counts an error and keeps the first few messages.
func (r *soakRun) fail(err error) {
	r.errs.Add(1)
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.errMsgs) < soakMaxErrs {
		r.errMsgs = append(r.errMsgs, err.Error())
	}
}
