package kmip_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	kmipgo "github.com/ovh/kmip-go"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/kmip"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/kmiptest"
)

// connect returns a store on srv with srv's client certificate.
func connect(t *testing.T, ctx context.Context, srv *kmiptest.Server) *kmip.Store {
	t.Helper()
	s, err := kmip.Connect(ctx, &kmip.Config{
		Endpoints: []string{srv.Addr},
		CertFile:  srv.Client.CertFile, KeyFile: srv.Client.KeyFile, CAPath: srv.CA.File,
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v\npykmip-server log:\n%s", err, srv.Log())
	}
	return s
}

// TestStore runs the conformance suite and the tests of what is special
// to KMIP against one real pykmip-server: a start costs seconds of Python.
// Every test leaves the server empty (clear), so the next gets an empty
// store.
func TestStore(t *testing.T) {
	srv := kmiptest.Start(t)
	t.Run("Conformance", func(t *testing.T) {
		// PyKMIP refuses messages over 1 MiB; stored key records are
		// well under 1 KiB.
		storetest.RunOptions(t, func(t *testing.T) keystore.Store {
			s := connect(t, t.Context(), srv)
			t.Cleanup(func() { clear(t, srv) })
			return s
		}, storetest.Options{MaxValueSize: 64 << 10})
	})
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, srv *kmiptest.Server)
	}{
		{"NodesRace", testNodesRace},
		{"ListWhileCreating", testListWhileCreating},
		{"NameShared", testNameShared},
		{"Credentials", testCredentials},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() { clear(t, srv) })
			tt.fn(t, srv)
		})
	}
	// Last: it stops the server.
	t.Run("Unreachable", func(t *testing.T) { testUnreachable(t, srv) })
}

// clear deletes every key of srv.
func clear(t *testing.T, srv *kmiptest.Server) {
	ctx := context.WithoutCancel(t.Context())
	s := connect(t, ctx, srv)
	defer s.Close()
	names, _, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatalf("clear: %v", err)
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("clear: %v", err)
		}
	}
}

// testNodesRace: two stores on one server (two KES nodes) race to create
// the same names. Of each race at most one create succeeds, the others
// answer ErrExists, and what is left is the winner's value or, if every
// create stepped back, nothing: never two objects, never a value whose
// create was answered ErrExists.
func testNodesRace(t *testing.T, srv *kmiptest.Server) {
	nodes := []*kmip.Store{connect(t, t.Context(), srv), connect(t, t.Context(), srv)}
	for _, s := range nodes {
		t.Cleanup(func() { s.Close() })
	}
	ctx := t.Context()
	for round := range 10 {
		name := fmt.Sprintf("race-%d", round)
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, s := range nodes {
			wg.Go(func() { errs[i] = s.Create(ctx, name, fmt.Appendf(nil, "node-%d", i)) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: both nodes' creates succeeded", name)
			case err == nil:
				winner = i
			case !errors.Is(err, keystore.ErrExists):
				t.Fatalf("%s: node %d: got %v, want keystore.ErrExists", name, i, err)
			}
		}
		for i, s := range nodes {
			v, err := s.Get(ctx, name)
			switch {
			case winner < 0 && !errors.Is(err, keystore.ErrNotFound):
				t.Fatalf("%s: both creates stepped back, node %d reads %q, %v", name, i, v, err)
			case winner >= 0 && (err != nil || string(v) != fmt.Sprintf("node-%d", winner)):
				t.Fatalf("%s: node %d won, node %d reads %q, %v", name, winner, i, v, err)
			}
		}
	}
}

// testListWhileCreating: List and Create of one store run at once (the
// purge loop lists while clients create): under -race this caught List
// reading its name map after publishing it to Create.
func testListWhileCreating(t *testing.T, srv *kmiptest.Server) {
	s := connect(t, t.Context(), srv)
	defer s.Close()
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := s.Create(ctx, fmt.Sprintf("concurrent-%d", i), []byte("v")); err != nil {
				t.Errorf("create: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for range n {
			if _, _, err := s.List(ctx, "", "", 0); err != nil {
				t.Errorf("list: %v", err)
				return
			}
		}
	})
	wg.Wait()
	names, _, err := s.List(ctx, "concurrent-", "", 0)
	if err != nil || len(names) != n {
		t.Fatalf("list after the creates: %d names, %v; want %d", len(names), err, n)
	}
}

// testNameShared: an object that carries a key's name besides the key (a
// node died before it removed its object of a lost race) makes Get fail
// with ErrNameShared instead of answering either value; Delete removes
// both and frees the name.
func testNameShared(t *testing.T, srv *kmiptest.Server) {
	s := connect(t, t.Context(), srv)
	defer s.Close()
	ctx := t.Context()
	if err := s.Create(ctx, "shared", []byte("first")); err != nil {
		t.Fatal(err)
	}
	registerRaw(t, srv, "shared", []byte("second"))
	if v, err := s.Get(ctx, "shared"); !errors.Is(err, kmip.ErrNameShared) || v != nil {
		t.Fatalf("Get of a shared name = %q, %v; want kmip.ErrNameShared", v, err)
	}
	if err := s.Create(ctx, "shared", []byte("third")); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create of a shared name: got %v, want keystore.ErrExists", err)
	}
	if names, _, err := s.List(ctx, "", "", 0); err != nil || !slices.Equal(names, []string{"shared"}) {
		t.Fatalf("List = %q, %v; want [shared] once", names, err)
	}
	if err := s.Delete(ctx, "shared"); err != nil {
		t.Fatalf("Delete of a shared name: %v", err)
	}
	if _, err := s.Get(ctx, "shared"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after Delete: got %v, want keystore.ErrNotFound", err)
	}
	// A key another client registered (another node, with a cold name
	// cache) is listed and read.
	registerRaw(t, srv, "foreign", []byte("value"))
	if names, _, err := s.List(ctx, "", "", 0); err != nil || !slices.Equal(names, []string{"foreign"}) {
		t.Fatalf("List = %q, %v; want [foreign]", names, err)
	}
	if v, err := s.Get(ctx, "foreign"); err != nil || string(v) != "value" {
		t.Fatalf("Get(foreign) = %q, %v", v, err)
	}
}

// registerRaw registers a Secret Data object named name with a client of
// its own, as another node or an operator would.
func registerRaw(t *testing.T, srv *kmiptest.Server, name string, value []byte) {
	t.Helper()
	_, err := srv.KMIPClient(t).Register().Secret(kmipgo.SecretDataTypePassword, value).WithName(name).ExecContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
}

// testUnreachable: a stopped server and a server that never completes the
// handshake end in errors that wrap keystore.UnreachableError, the latter
// by the context's deadline. It stops srv.
func testUnreachable(t *testing.T, srv *kmiptest.Server) {
	s := connect(t, t.Context(), srv)
	defer s.Close()
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for name, call := range map[string]func(ctx context.Context) error{
		"Status": func(ctx context.Context) error { _, err := s.Status(ctx); return err },
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
		"Create": func(ctx context.Context) error { return s.Create(ctx, "k2", []byte("v")) },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "k") },
		"List":   func(ctx context.Context) error { _, _, err := s.List(ctx, "", "", 0); return err },
	} {
		if err := call(t.Context()); !keystore.IsUnreachable(err) {
			t.Errorf("%s on a stopped server: got %v, want an UnreachableError", name, err)
		}
	}

	// A listener that accepts and then stays silent: the TLS handshake
	// never ends, and the deadline does.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = kmip.Connect(ctx, &kmip.Config{
		Endpoints: []string{l.Addr().String()},
		CertFile:  srv.Client.CertFile, KeyFile: srv.Client.KeyFile, CAPath: srv.CA.File,
	}, nil)
	if !keystore.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect to a silent server: got %v, want an UnreachableError for the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect to a silent server took %v, past its deadline of 300ms", d)
	}
}

// testCredentials: a store that sends a user name and password in every
// request works (PyKMIP without an authentication plugin takes the
// identity from the certificate and ignores them).
func testCredentials(t *testing.T, srv *kmiptest.Server) {
	s, err := kmip.Connect(t.Context(), &kmip.Config{
		Endpoints: []string{"127.0.0.2:1", srv.Addr}, // the first endpoint is down
		CertFile:  srv.Client.CertFile, KeyFile: srv.Client.KeyFile, CAPath: srv.CA.File,
		Username: "kes", Password: "not-a-real-password",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
