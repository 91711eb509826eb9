package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore/tombstone"
)

// crashState is what the test knows about a key after its last request.
type crashState int

const (
	keyPresent crashState = iota // create or import acknowledged (200)
	keyAbsent                    // delete acknowledged
	keyUnknown                   // the request was in flight at the kill
)

// crashKey is one key of the crash test, owned by one worker.
type crashKey struct {
	name     string
	state    crashState
	imported []byte // the imported key bytes; nil for created keys
	deleting bool   // the unknown request was a delete
}

// crashCounts are the figures of the crash test.
type crashCounts struct {
	creates, imports, deletes atomic.Int64 // acknowledged
	unknown                   atomic.Int64 // in flight at a kill
	landed, vanished          int          // unknown requests found done / not done
	tmpLeft                   int          // temporary files a kill left behind
	verified                  int          // keys checked after restarts (counted per restart)
}

// TestCrashKill: SIGKILL of the server in the middle of a burst of
// concurrent creates, imports and deletes on the fs store loses nothing
// (issue 11). After every restart each acknowledged create or import is
// listed, its stored bytes decode (imported ones to the imported bytes) and
// generate+decrypt works with it; each acknowledged delete is gone; a
// request that was in flight at the kill is done entirely or not at all;
// the directory holds no temporary file (New sweeps what the kill left) and
// nothing else the test did not create but the tombstones of soft-deleted
// keys (the default), each an intact copy of a key record.
func TestCrashKill(t *testing.T) {
	const (
		kills   = 4
		workers = 16
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	s := newFSServer(t, "")

	owned := make([][]*crashKey, workers) // each worker's keys, across rounds
	var n crashCounts
	for round := range kills {
		killAt := int64(100 + rnd.IntN(200)) // acknowledged requests before the kill
		crashBurst(t, s, round, owned, killAt, seed, &n)
		crashLeftovers(t, s.keys, &n)
		s.restart(t)
		crashVerify(t, s, owned, &n)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills; acknowledged: %d creates, %d imports, %d deletes; unanswered at a kill: %d (%d done entirely, %d not at all); %d temporary files left by kills, all swept; %d key checks after restarts",
		kills, n.creates.Load(), n.imports.Load(), n.deletes.Load(), n.unknown.Load(), n.landed, n.vanished, n.tmpLeft, n.verified)
	if n.unknown.Load() == 0 {
		t.Errorf("no request was in flight at any kill: the test did not crash mid-burst")
	}
}

// crashBurst runs workers that create, import and delete keys until the
// server dies; the server is killed once killAt requests were acknowledged.
func crashBurst(t *testing.T, s *fsServer, round int, owned [][]*crashKey, killAt int64, seed uint64, n *crashCounts) {
	var acked atomic.Int64
	fire := make(chan struct{})
	var fireOnce sync.Once
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Value // the first unexpected answer
	for w := range owned {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(round*1000+w+1)))
			for i := 0; ; i++ {
				k, op := crashNext(rnd, &owned[w], fmt.Sprintf("r%dw%dn%d", round, w, i))
				code, reply, err := crashSend(ctx, s, k, op)
				if err != nil { // the server died: this one may go either way
					k.state, k.deleting = keyUnknown, op == "delete"
					n.unknown.Add(1)
					return
				}
				if code != http.StatusOK {
					failed.CompareAndSwap(nil, fmt.Sprintf("%s %s: %d %s", op, k.name, code, reply))
					fireOnce.Do(func() { close(fire) })
					return
				}
				switch op {
				case "create":
					n.creates.Add(1)
				case "import":
					n.imports.Add(1)
				case "delete":
					n.deletes.Add(1)
					k.state = keyAbsent
				}
				if acked.Add(1) == killAt {
					fireOnce.Do(func() { close(fire) })
				}
			}
		})
	}
	go func() { // should every worker stop early, kill anyway
		wg.Wait()
		fireOnce.Do(func() { close(fire) })
	}()
	<-fire
	s.kill()
	wg.Wait()
	if f := failed.Load(); f != nil {
		t.Fatalf("round %d: unexpected answer: %s", round, f)
	}
}

// crashNext picks the next operation of a worker: a delete of one of its
// present keys (30 %), else an import (35 %) or a create of a new key
// named name. New keys are added to the worker's keys as present; the
// caller corrects that if the request fails.
func crashNext(rnd *rand.Rand, keys *[]*crashKey, name string) (*crashKey, string) {
	if rnd.IntN(100) < 30 {
		var present []*crashKey
		for _, k := range *keys {
			if k.state == keyPresent {
				present = append(present, k)
			}
		}
		if len(present) > 0 {
			return present[rnd.IntN(len(present))], "delete"
		}
	}
	k := &crashKey{name: name, state: keyPresent}
	op := "create"
	if rnd.IntN(100) < 50 {
		k.imported, op = randomKey(), "import"
	}
	*keys = append(*keys, k)
	return k, op
}

// crashSend sends the request of op for k.
func crashSend(ctx context.Context, s *fsServer, k *crashKey, op string) (int, []byte, error) {
	switch op {
	case "create":
		return s.do(ctx, http.MethodPost, "/v1/key/create/"+k.name, nil)
	case "import":
		return s.do(ctx, http.MethodPost, "/v1/key/import/"+k.name, kes.ImportKeyRequest{Key: k.imported, Cipher: "AES256"})
	default:
		return s.do(ctx, http.MethodDelete, "/v1/key/delete/"+k.name, nil)
	}
}

// crashLeftovers counts the temporary files the kill left in dir and adds
// one as a kill during a write leaves it (young, unlinked, unlocked), so
// that every round checks the sweep at start.
func crashLeftovers(t *testing.T, dir string, n *crashCounts) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			n.tmpLeft++
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-HALFWRITTEN"), []byte("half a rec"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashVerify checks the restarted server and its directory against what
// the workers know, and settles the keys whose request was in flight.
func crashVerify(t *testing.T, s *fsServer, owned [][]*crashKey, n *crashCounts) {
	t.Helper()
	files := crashFiles(t, s.keys)
	// Deletes are soft (the config has no key_deletion): a deleted key's
	// record is kept under its tombstone name, which no listing shows.
	// Each must be a byte copy of a key the test created; a delete that a
	// kill cut between its two steps leaves the key live with its
	// tombstone, which the checks below take as not deleted.
	tombstones := map[string][]byte{}
	for name, record := range files {
		if ts, ok := tombstone.Parse(name); ok {
			tombstones[ts.Key] = record
			delete(files, name)
			if _, err := crypto.ParseKey(record); err != nil {
				t.Errorf("tombstone %s: %v", name, err)
			}
		}
	}
	listed, err := s.list(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, slices.Sorted(func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
	})) {
		t.Errorf("listed %d keys, the directory holds %d", len(listed), len(files))
	}
	known := map[string]bool{}
	var check []string
	for _, keys := range owned {
		for _, k := range keys {
			known[k.name] = true
			record, ok := files[k.name]
			switch {
			case k.state == keyPresent && !ok:
				t.Errorf("acknowledged key %s is gone after the kill", k.name)
			case k.state == keyAbsent && ok:
				t.Errorf("acknowledged delete of %s undone by the kill", k.name)
			case k.state == keyUnknown:
				if ok == k.deleting {
					n.vanished++
				} else {
					n.landed++
				}
				k.state, k.deleting = keyAbsent, false
				if ok {
					k.state = keyPresent
				}
			}
			if !ok {
				continue
			}
			key, err := crypto.ParseKey(record)
			if err != nil {
				t.Errorf("stored record of %s: %v", k.name, err)
				continue
			}
			if k.imported != nil {
				want, _ := crypto.NewSecretKey(crypto.AES256, k.imported)
				if !key.Secret.Equal(want) {
					t.Errorf("stored record of %s holds another key than imported", k.name)
				}
			}
			check = append(check, k.name)
		}
	}
	for name := range files {
		if !known[name] {
			t.Errorf("the directory holds %q, which the test never created", name)
		}
	}
	for name := range tombstones {
		if !known[name] {
			t.Errorf("the directory holds a tombstone of %q, which the test never created", name)
		}
	}
	crashRoundTrips(t, s, check)
	n.verified += len(check)
}

// crashFiles returns the key records in dir, and fails on anything but
// valid key names: a temporary file must have been swept at start.
func crashFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".") || !e.Type().IsRegular() {
			t.Errorf("%s left in the key directory after the restart", e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// crashRoundTrips runs a generate+decrypt round trip with every key in
// names, from a few workers.
func crashRoundTrips(t *testing.T, s *fsServer, names []string) {
	t.Helper()
	next := make(chan string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for name := range next {
				if err := s.roundTrip(t.Context(), name); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, name := range names {
		next <- name
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
}
