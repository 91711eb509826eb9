package log

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// testWriter is a batchWriter that collects the batches it writes. A
// write first sends to entered (if not nil, without waiting), waits for
// release (if not nil) and takes delay (of the bubble's clock: the time
// a slow disk takes); then it fails with err, or collects the batch.
type testWriter struct {
	entered chan struct{}
	release chan struct{}
	delay   time.Duration
	err     error

	mu     sync.Mutex
	got    bytes.Buffer
	writes int
}

func (w *testWriter) write(_ context.Context, b []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	if w.release != nil {
		<-w.release
	}
	if w.delay > 0 {
		time.Sleep(w.delay)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.err != nil {
		return 0, w.err
	}
	w.got.Write(b)
	return len(b), nil
}

func (w *testWriter) tick(time.Time) error { return nil }
func (w *testWriter) close() error         { return nil }

// records returns the IDs of the records written, in order (see
// [record]).
func (w *testWriter) records() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for line := range bytes.Lines(w.got.Bytes()) {
		if len(line) == recordSize {
			line = bytes.TrimRight(line, " \n")
		}
		ids = append(ids, string(line))
	}
	return ids
}

// smallSink returns a sink named name that writes to w: a file sink
// (back-pressure) or a syslog sink (drops when full), with a 1 KiB queue
// that 20 records of [record] fill.
func smallSink(name string, w *testWriter, errLog *slog.Logger) *Sink {
	s := newSink(name, name == "file", w, errLog, nil)
	s.limit = 1 << 10
	return s
}

// recordSize is the length of a record of [record].
const recordSize = 50

// record returns record seq of writer w: its ID "w<w>-<seq>", padded with
// spaces to recordSize bytes, and a newline.
func record(w, seq int) []byte {
	return fmt.Appendf(nil, "%-*s\n", recordSize-1, fmt.Sprintf("w%d-%d", w, seq))
}

// runWriters calls f(w, seq) for seq from 0 to perWriter-1, in that order,
// in a goroutine for each writer w from 0 to writers-1, and waits for them.
func runWriters(writers, perWriter int, f func(w, seq int)) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := range perWriter {
				f(w, seq)
			}
		})
	}
	wg.Wait()
}

// checkSequences checks that ids, in the order read, are prefix followed
// by "w<w>-<seq>" for seq from 0 to perWriter-1 of each writer w from 0 to
// writers-1, each writer's in order: nothing lost, repeated or reordered.
func checkSequences(t *testing.T, ids []string, prefix string, writers, perWriter int) {
	t.Helper()
	if len(ids) != writers*perWriter {
		t.Fatalf("read %d events, want %d", len(ids), writers*perWriter)
	}
	next := make([]int, writers)
	for _, id := range ids {
		var w, seq int
		rest, ok := strings.CutPrefix(id, prefix)
		if _, err := fmt.Sscanf(rest, "w%d-%d", &w, &seq); !ok || err != nil || w < 0 || w >= writers || rest != fmt.Sprintf("w%d-%d", w, seq) {
			t.Fatalf("unexpected event %q", id)
		}
		if seq != next[w] {
			t.Fatalf("writer %d: event %d follows event %d", w, seq, next[w]-1)
		}
		next[w]++
	}
}
