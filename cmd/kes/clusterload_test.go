package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
)

// timeline records when the test did what, so that a failed request can
// be placed among the kills.
type timeline struct {
	start time.Time

	mu     sync.Mutex
	events []event
}

type event struct {
	at   time.Time
	what string
}

func newTimeline() *timeline { return &timeline{start: time.Now()} }

// mark records what happened now and logs it.
func (tl *timeline) mark(t *testing.T, format string, args ...any) {
	t.Helper()
	what, now := fmt.Sprintf(format, args...), time.Now()
	tl.mu.Lock()
	tl.events = append(tl.events, event{now, what})
	tl.mu.Unlock()
	t.Logf("t=%.3fs: %s", now.Sub(tl.start).Seconds(), what)
}

// rel returns at as seconds since the start, and since the last event
// before it: "t=12.3s (+1.2s after killed the Vault leader node1)".
func (tl *timeline) rel(at time.Time) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	s := fmt.Sprintf("t=%.3fs", at.Sub(tl.start).Seconds())
	for i := len(tl.events) - 1; i >= 0; i-- {
		if e := tl.events[i]; !e.at.After(at) {
			return s + fmt.Sprintf(" (+%.3fs after %s)", at.Sub(e.at).Seconds(), e.what)
		}
	}
	return s
}

// clusterLoad is the mixed load of the cluster test and its counts.
type clusterLoad struct {
	client *kes.Client
	hot    []string // keys created before the load
	prefix string   // of the keys the load creates
	tl     *timeline
	names  map[string]string // host:port → node name, for the report

	generates, decrypts, describes, creates atomic.Int64 // answered requests
	createRetried                           atomic.Int64 // creates answered "exists" after the SDK repeated them
	failures                                atomic.Int64
	seq                                     atomic.Int64

	mu     sync.Mutex
	failed []failedRequest // the first failures
}

// failedRequest is what the test knows of a request that failed.
type failedRequest struct {
	op, name   string
	start, end time.Time
	err        error
	attempts   []attempt // every HTTP request the SDK sent for it
}

type attempt struct {
	host string
	at   time.Time
}

// run sends requests until ctx ends: a data key generated and decrypted
// under a hot key, a hot key described, or a new key created and then
// described, which MinIO does when it creates a bucket key.
func (l *clusterLoad) run(ctx context.Context, worker int) {
	rnd := rand.New(rand.NewPCG(uint64(worker), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		name := l.hot[rnd.IntN(len(l.hot))]
		switch r := rnd.IntN(10); {
		case r < 6:
			assoc := []byte(fmt.Sprintf("bucket-%d/object", rnd.IntN(100)))
			var dek *kes.GenerateKeyResponse
			ok := l.do(ctx, "generate", name, &l.generates, func(ctx context.Context) (err error) {
				dek, err = l.client.GenerateKey(ctx, name, assoc)
				return err
			})
			if !ok {
				continue
			}
			l.do(ctx, "decrypt", name, &l.decrypts, func(ctx context.Context) error {
				plain, err := l.client.Decrypt(ctx, name, dek.Ciphertext, assoc)
				if err == nil && !bytes.Equal(plain, dek.Plaintext) {
					return errors.New("wrong plaintext")
				}
				return err
			})
		case r < 8:
			l.do(ctx, "describe", name, &l.describes, func(ctx context.Context) error {
				_, err := l.client.DescribeKey(ctx, name)
				return err
			})
		default:
			name := fmt.Sprintf("%s-%d-%d", l.prefix, worker, l.seq.Add(1))
			ok := l.do(ctx, "create", name, &l.creates, func(ctx context.Context) error {
				err := l.client.CreateKey(ctx, name)
				if errors.Is(err, kes.ErrKeyExists) {
					// The first attempt reached a node that stored
					// the key but was killed, or lost its Vault
					// node, before it answered; the name is this
					// worker's alone, so the key is ours.
					l.createRetried.Add(1)
					return nil
				}
				return err
			})
			if !ok {
				continue
			}
			l.do(ctx, "describe", name, &l.describes, func(ctx context.Context) error {
				_, err := l.client.DescribeKey(ctx, name)
				return err
			})
		}
	}
}

// do runs one request, tracing the endpoints the SDK sends it to. It
// counts an answered request, or a failure unless the load was stopped
// while it was in flight.
func (l *clusterLoad) do(ctx context.Context, op, name string, n *atomic.Int64, f func(context.Context) error) bool {
	var (
		mu       sync.Mutex
		attempts []attempt
	)
	trace := &httptrace.ClientTrace{GetConn: func(hostPort string) {
		mu.Lock()
		attempts = append(attempts, attempt{hostPort, time.Now()})
		mu.Unlock()
	}}
	start := time.Now()
	err := f(httptrace.WithClientTrace(ctx, trace))
	if err == nil {
		n.Add(1)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	l.failures.Add(1)
	mu.Lock()
	defer mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) < 10 {
		l.failed = append(l.failed, failedRequest{op, name, start, time.Now(), err, attempts})
	}
	return false
}

// counts is the load's summary line.
func (l *clusterLoad) counts() string {
	return fmt.Sprintf("%d generate, %d decrypt, %d describe, %d create (%d answered \"exists\" after an SDK retry); %d failed",
		l.generates.Load(), l.decrypts.Load(), l.describes.Load(), l.creates.Load(), l.createRetried.Load(), l.failures.Load())
}

// report fails t with one error per failed request: the operation, the
// key, the error, when it started and ended among the test's events, and
// each HTTP request the SDK sent for it (which node, when).
func (l *clusterLoad) report(t *testing.T) bool {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.failed {
		var tries []string
		for _, a := range f.attempts {
			name := l.names[a.host]
			if name == "" {
				name = a.host
			}
			tries = append(tries, fmt.Sprintf("%s at %.3fs", name, a.at.Sub(l.tl.start).Seconds()))
		}
		t.Errorf("failed request: %s %s: %v\n\tstarted %s\n\tended   %s\n\tsent to: %s",
			f.op, f.name, f.err, l.tl.rel(f.start), l.tl.rel(f.end), strings.Join(tries, ", "))
	}
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d client requests failed (the first %d above)", n, len(l.failed))
		return false
	}
	return true
}
