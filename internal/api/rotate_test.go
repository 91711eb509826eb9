package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/vectors"
)

// adminClient returns an SDK client of the vectors' admin for the servers.
func adminClient(t *testing.T, servers ...*testServer) *kes.Client {
	t.Helper()
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	apiKey, err := kes.ParseAPIKey(keys[0].APIKey)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URL)
	}
	c, err := kes.NewClient(urls, kes.WithAPIKey(apiKey), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRotateVectors rotates every upstream vector key through the API:
// every upstream ciphertext still decrypts, as version 1, and keys not
// rotated keep their record byte for byte and answer without a version.
func TestRotateVectors(t *testing.T) {
	ts := vectorServer(t)
	admin := ts.vectorClients(t, false)["admin"]
	vecs := vectors.ReadJSONL[ciphertextVector](t, "ciphertexts.jsonl")

	before := snapshotDir(t, ts.Dir)
	// Never rotated: upstream's answer, without a version field.
	for _, v := range vecs {
		r := do(t, admin, "PUT", ts.URL+"/v1/key/decrypt/"+v.Key, strings.NewReader(decryptBody(v)))
		if r.Status != 200 || bytes.Contains(r.Body, []byte("version")) {
			t.Fatalf("%s: %d %s", v.Key, r.Status, r.Body)
		}
	}
	if after := snapshotDir(t, ts.Dir); !equalSnapshots(before, after) {
		t.Fatal("using keys changed their records")
	}

	rotated := make(map[string]bool)
	for _, v := range vecs {
		if rotated[v.Key] {
			continue
		}
		rotated[v.Key] = true
		for want := 2; want <= 3; want++ {
			r := do(t, admin, "PUT", ts.URL+"/v1/key/rotate/"+v.Key, nil)
			if r.Status != 200 || string(r.Body) != fmt.Sprintf(`{"name":%q,"version":%d}`+"\n", v.Key, want) {
				t.Fatalf("rotate %s: %d %s", v.Key, r.Status, r.Body)
			}
		}
		stored, err := os.ReadFile(filepath.Join(ts.Dir, v.Key))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := crypto.VersionRecords(stored)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(recs[1], []byte(before[v.Key])) {
			t.Fatalf("%s: version 1 is not the upstream record", v.Key)
		}
	}
	for _, v := range vecs {
		r := do(t, admin, "PUT", ts.URL+"/v1/key/decrypt/"+v.Key, strings.NewReader(decryptBody(v)))
		if r.Status != 200 || string(r.Body) != `{"plaintext":"`+v.Plaintext+`","version":"1"}`+"\n" {
			t.Fatalf("%s (%s) after rotation: %d %s", v.Key, v.Format, r.Status, r.Body)
		}
	}
	for name := range before {
		if !rotated[name] {
			after := snapshotDir(t, ts.Dir)
			if after[name] != before[name] {
				t.Fatalf("%s was not rotated and changed", name)
			}
		}
	}
}

func decryptBody(v ciphertextVector) string {
	body := `{"ciphertext":"` + v.Ciphertext + `"`
	if v.Context != nil {
		body += `,"context":"` + *v.Context + `"`
	}
	return body + "}"
}

func equalSnapshots(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRotateFlow: rotation, versions, disabling, the version fields and
// re-wrap through the SDK and raw requests.
func TestRotateFlow(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := adminClient(t, ts)
	admin := ts.vectorClients(t, false)["admin"]
	ctx := t.Context()
	if err := c.CreateKey(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(ts.Dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base64.StdEncoding.DecodeString(string(stored)); err != nil {
		t.Fatalf("a new key is not upstream's record: %s", stored)
	}
	assoc := []byte("bucket/object")
	dek1, err := c.GenerateKey(ctx, "app", assoc)
	if err != nil || dek1.Version != "" || len(dek1.Ciphertext) != 76 {
		t.Fatalf("generate before rotation: %+v, %v", dek1, err)
	}
	if r := do(t, admin, "GET", ts.URL+"/v1/key/describe/app", nil); bytes.Contains(r.Body, []byte("version")) {
		t.Fatalf("describe of a key never rotated: %s", r.Body)
	}
	if v, err := c.ListKeyVersions(ctx, "app"); err != nil || v.Current != 1 || len(v.Versions) != 1 || !v.Versions[0].Current {
		t.Fatalf("versions: %+v, %v", v, err)
	}

	if n, err := c.RotateKey(ctx, "app"); err != nil || n != 2 {
		t.Fatalf("rotate = %d, %v", n, err)
	}
	dek2, err := c.GenerateKey(ctx, "app", assoc)
	if err != nil || dek2.Version != "2" || crypto.CiphertextVersion(dek2.Ciphertext) != 2 {
		t.Fatalf("generate after rotation: %+v, %v", dek2, err)
	}
	for _, dek := range []*kes.GenerateKeyResponse{dek1, dek2} {
		if pt, err := c.Decrypt(ctx, "app", dek.Ciphertext, assoc); err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("decrypt: %v", err)
		}
	}
	if r := do(t, admin, "GET", ts.URL+"/v1/key/describe/app", nil); !bytes.Contains(r.Body, []byte(`"version":"2"`)) {
		t.Fatalf("describe of a rotated key: %s", r.Body)
	}
	// A request may name the version.
	if ct, v, err := c.EncryptVersion(ctx, "app", 1, []byte("hi"), nil); err != nil || v != 1 || len(ct) != 2+44 {
		t.Fatalf("encrypt with version 1: %d, %v", v, err)
	}
	if _, _, err := c.EncryptVersion(ctx, "app", 7, []byte("hi"), nil); !errors.Is(err, kes.ErrKeyVersionNotFound) {
		t.Fatalf("encrypt with version 7: %v", err)
	}
	r := do(t, admin, "PUT", ts.URL+"/v1/key/decrypt/app", strings.NewReader(
		`{"ciphertext":"`+base64.StdEncoding.EncodeToString(dek1.Ciphertext)+`","context":"`+base64.StdEncoding.EncodeToString(assoc)+`","version":"2"}`))
	if r.Status != 400 || errorMessage(t, r) != kes.ErrDecrypt.Msg {
		t.Fatalf("decrypt of a version 1 ciphertext as version 2: %d %s", r.Status, r.Body)
	}

	// Disabled versions decrypt but do not encrypt.
	if err := c.DisableKeyVersion(ctx, "app", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EncryptVersion(ctx, "app", 1, []byte("hi"), nil); !errors.Is(err, kes.ErrKeyVersionDisabled) {
		t.Fatalf("encrypt with disabled version 1: %v", err)
	}
	if pt, err := c.Decrypt(ctx, "app", dek1.Ciphertext, assoc); err != nil || !bytes.Equal(pt, dek1.Plaintext) {
		t.Fatalf("decrypt with disabled version 1: %v", err)
	}
	if err := c.DisableKeyVersion(ctx, "app", 2); !errors.Is(err, kes.ErrCurrentKeyVersion) {
		t.Fatalf("disable the current version: %v", err)
	}
	if err := c.DisableKeyVersion(ctx, "app", 9); !errors.Is(err, kes.ErrKeyVersionNotFound) {
		t.Fatalf("disable version 9: %v", err)
	}
	if v, err := c.ListKeyVersions(ctx, "app"); err != nil || v.Current != 2 || !v.Versions[0].Disabled || v.Versions[1].Disabled {
		t.Fatalf("versions: %+v, %v", v, err)
	}

	// Re-wrap: a version 1 ciphertext becomes a version 2 one; the
	// plaintext never shows.
	rw, err := c.Rewrap(ctx, "app", dek1.Ciphertext, assoc)
	if err != nil || rw.Version != 2 || crypto.CiphertextVersion(rw.Ciphertext) != 2 {
		t.Fatalf("rewrap: %+v, %v", rw, err)
	}
	if pt, err := c.Decrypt(ctx, "app", rw.Ciphertext, assoc); err != nil || !bytes.Equal(pt, dek1.Plaintext) {
		t.Fatalf("decrypt of the re-wrapped ciphertext: %v", err)
	}
	r = do(t, admin, "PUT", ts.URL+"/v1/key/rewrap/app", strings.NewReader(
		`{"ciphertext":"`+base64.StdEncoding.EncodeToString(dek1.Ciphertext)+`","context":"b3RoZXI="}`))
	if r.Status != 400 || errorMessage(t, r) != kes.ErrDecrypt.Msg || bytes.Contains(r.Body, []byte("ciphertext\"")) {
		t.Fatalf("rewrap with a wrong context: %d %s", r.Status, r.Body)
	}

	items := []kes.RewrapItem{{Ciphertext: dek1.Ciphertext, Context: assoc}, {Ciphertext: dek2.Ciphertext, Context: assoc}}
	if err := c.EnableKeyVersion(ctx, "app", 1); err != nil {
		t.Fatal(err)
	}
	if n, err := c.RotateKey(ctx, "app"); err != nil || n != 3 {
		t.Fatalf("rotate = %d, %v", n, err)
	}
	bulk, err := c.BulkRewrap(ctx, "app", items)
	if err != nil || bulk.Version != 3 || len(bulk.Ciphertexts) != 2 {
		t.Fatalf("bulk rewrap: %+v, %v", bulk, err)
	}
	for i, ct := range bulk.Ciphertexts {
		want := []*kes.GenerateKeyResponse{dek1, dek2}[i].Plaintext
		if pt, err := c.Decrypt(ctx, "app", ct, assoc); err != nil || !bytes.Equal(pt, want) || crypto.CiphertextVersion(ct) != 3 {
			t.Fatalf("bulk item %d: %v", i, err)
		}
	}
	items[1].Context = []byte("other")
	if bulk, err := c.BulkRewrap(ctx, "app", items); !errors.Is(err, kes.ErrDecrypt) || bulk != nil {
		t.Fatalf("bulk rewrap with a wrong context: %+v, %v", bulk, err)
	}
	if _, err := c.BulkRewrap(ctx, "app", make([]kes.RewrapItem, 1001)); !errors.Is(err, kes.ErrTooManyCiphertexts) {
		t.Fatalf("bulk rewrap of 1001: %v", err)
	}
	if _, err := c.RotateKey(ctx, "missing"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("rotate of a missing key: %v", err)
	}
	// HMAC does not rotate.
	if _, err := c.HMAC(ctx, "app", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// noReplace hides the Replacer of a store: a store without compare-and-swap.
type noReplace struct{ keystore.Store }

// TestRotateUnsupported: a store that cannot compare and swap answers 501
// and keeps the key as it was.
func TestRotateUnsupported(t *testing.T) {
	ts := startServer(t, serverOptions{store: func(dir string) keystore.Store {
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return noReplace{s}
	}})
	c := adminClient(t, ts)
	ctx := t.Context()
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, ts.Dir)
	if _, err := c.RotateKey(ctx, "k"); !errors.Is(err, kes.ErrRotateUnsupported) {
		t.Fatalf("rotate: %v", err)
	}
	var e *kes.Error
	if _, err := c.RotateKey(ctx, "k"); !errors.As(err, &e) || e.Status != 501 || e.Msg != "key store cannot rotate keys atomically" {
		t.Fatalf("rotate: %v", err)
	}
	if !equalSnapshots(before, snapshotDir(t, ts.Dir)) {
		t.Fatal("the key changed")
	}
}

// TestRotateUnderLoad: three servers on one fs store; clients generate on
// one server and decrypt at once on another while keys are rotated
// through all three, also concurrently. No decrypt fails, and every
// version of every concurrent rotation is kept.
func TestRotateUnderLoad(t *testing.T) {
	a := startServer(t, serverOptions{})
	b := startServer(t, serverOptions{sharedDir: a.Dir})
	c := startServer(t, serverOptions{sharedDir: a.Dir})
	rotateUnderLoad(t, []*kes.Client{adminClient(t, a), adminClient(t, b), adminClient(t, c)})
}

// rotateUnderLoad runs the mixed load of TestRotateUnderLoad against
// clients of servers that share one store.
func rotateUnderLoad(t *testing.T, clients []*kes.Client) {
	t.Helper()
	ctx := t.Context()
	const key = "load"
	if err := clients[0].CreateKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		ops      atomic.Int64
		versions sync.Map // version numbers seen in generate answers
		failures = make(chan error, 100)
		progress = make(chan struct{}, 1) // a pair was done
	)
	fail := func(err error) {
		select {
		case failures <- err:
		default:
		}
	}
	for w := range 6 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				assoc := []byte(fmt.Sprintf("obj-%d-%d", w, i))
				gen := clients[(w+i)%len(clients)]
				dec := clients[(w+i+1)%len(clients)]
				dek, err := gen.GenerateKey(ctx, key, assoc)
				if err != nil {
					fail(fmt.Errorf("generate: %w", err))
					return
				}
				versions.Store(dek.Version, true)
				pt, err := dec.Decrypt(ctx, key, dek.Ciphertext, assoc)
				if err != nil {
					fail(fmt.Errorf("decrypt of a version %q ciphertext on another server: %w", dek.Version, err))
					return
				}
				if !bytes.Equal(pt, dek.Plaintext) {
					fail(errors.New("wrong plaintext"))
					return
				}
				ops.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	// Rotations: a round of one rotation through each server at once
	// (they race: compare-and-swap), then one through each server alone,
	// whose new version the other two learn from the ciphertexts.
	rounds := [][]*kes.Client{clients}
	for _, cl := range clients {
		rounds = append(rounds, []*kes.Client{cl})
	}
	won := make(map[int]bool)
	rotations := 0
	for _, round := range rounds {
		var mu sync.Mutex
		var rw sync.WaitGroup
		for _, cl := range round {
			rotations++
			rw.Go(func() {
				n, err := cl.RotateKey(ctx, key)
				if err != nil {
					fail(fmt.Errorf("rotate: %w", err))
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if won[n] {
					fail(fmt.Errorf("version %d made twice", n))
				}
				won[n] = true
			})
		}
		rw.Wait()
		// Let the load use the new version before the next round.
		for start := ops.Load(); ops.Load() < start+20 && len(failures) == 0; {
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Fatal(err)
	}
	last := 1 + rotations
	for n := 2; n <= last; n++ {
		if !won[n] {
			t.Fatalf("no rotation answered version %d: %v", n, won)
		}
	}
	v, err := clients[0].ListKeyVersions(ctx, key)
	if err != nil || v.Current != last || len(v.Versions) != last {
		t.Fatalf("versions after %d rotations: %+v, %v", rotations, v, err)
	}
	if _, ok := versions.Load(fmt.Sprint(last)); !ok {
		t.Fatalf("no generate used the last version %d", last)
	}
	t.Logf("%d generate+decrypt pairs, %d rotations", ops.Load(), rotations)
}

// countingStore counts the reads of a store.
type countingStore struct {
	keystore.Store
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, name string) ([]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, name)
}

// TestUnknownVersionBounded: ciphertexts that claim versions the key does
// not have fail with upstream's 400 and cost at most one store read per
// key and second, however many arrive.
func TestUnknownVersionBounded(t *testing.T) {
	var store *countingStore
	ts := startServer(t, serverOptions{store: func(dir string) keystore.Store {
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		store = &countingStore{Store: s}
		return store
	}})
	c := adminClient(t, ts)
	ctx := t.Context()
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(ctx, "k", nil); err != nil { // cached now
		t.Fatal(err)
	}
	start, before := time.Now(), store.gets.Load()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			forged := append([]byte{'K', 'V', 0, 0, byte(i), byte(i + 2)}, make([]byte, 60)...)
			if _, err := c.Decrypt(ctx, "k", forged, nil); !errors.Is(err, kes.ErrDecrypt) {
				t.Errorf("forged version: %v", err)
			}
		})
	}
	wg.Wait()
	reads := store.gets.Load() - before
	if limit := int64(time.Since(start)/time.Second) + 1; reads > limit {
		t.Fatalf("40 forged ciphertexts in %v: %d store reads, want at most %d", time.Since(start), reads, limit)
	}
}
