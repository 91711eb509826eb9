package kmip_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kmipgo "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/kmip"
	"github.com/openkes/kes/internal/proxytest"
)

// fakeServer is an in-process KMIP server (kmip-go's kmipserver) on a
// loopback TLS listener that requires a client certificate of ca: for the
// failures a real server does not produce on demand.
type fakeServer struct {
	addr   string
	ca     *proxytest.CA
	client *proxytest.Cert
	// conns are the accepted connections, for a handler that drops them.
	mu    sync.Mutex
	conns []net.Conn
}

type recordingListener struct {
	net.Listener
	s *fakeServer
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns = append(l.s.conns, c)
		l.s.mu.Unlock()
	}
	return c, err
}

// dropAll closes every connection the server accepted.
func (s *fakeServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// startFake serves routes over TLS with conf's versions (nil: TLS 1.2+).
func startFake(t *testing.T, conf *tls.Config, routes map[kmipgo.Operation]kmipserver.OperationHandler) *fakeServer {
	t.Helper()
	ca := proxytest.NewCA(t)
	server := ca.Issue(t, "kmip", proxytest.ServerAuth)
	if conf == nil {
		conf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	conf.Certificates = []tls.Certificate{server.TLS}
	conf.ClientCAs, conf.ClientAuth = ca.Pool, tls.RequireAndVerifyClientCert
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{addr: l.Addr().String(), ca: ca, client: ca.Issue(t, "kes", proxytest.ClientAuth)}
	exec := kmipserver.NewBatchExecutor()
	for op, h := range routes {
		exec.Route(op, h)
	}
	srv := kmipserver.NewServer(recordingListener{l, s}, exec)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve()
	}()
	t.Cleanup(func() {
		srv.Shutdown()
		s.dropAll()
		<-done
	})
	return s
}

func (s *fakeServer) config() *kmip.Config {
	return &kmip.Config{Endpoints: []string{s.addr}, CertFile: s.client.CertFile, KeyFile: s.client.KeyFile, CAPath: s.ca.File}
}

// TestNoResend: a Register whose connection is lost is not sent again
// (the KMIP client would dial again and resend it, registering the key
// twice); the create fails as unreachable. A Locate on an idle connection
// the server dropped is sent again on a new one.
func TestNoResend(t *testing.T) {
	var registers, locates atomic.Int32
	var fake *fakeServer
	fake = startFake(t, nil, map[kmipgo.Operation]kmipserver.OperationHandler{
		kmipgo.OperationLocate: kmipserver.HandleFunc(func(ctx context.Context, req *payloads.LocateRequestPayload) (*payloads.LocateResponsePayload, error) {
			locates.Add(1)
			return &payloads.LocateResponsePayload{}, nil
		}),
		kmipgo.OperationRegister: kmipserver.HandleFunc(func(ctx context.Context, req *payloads.RegisterRequestPayload) (*payloads.RegisterResponsePayload, error) {
			registers.Add(1)
			fake.dropAll()
			return nil, kmipserver.Errorf(kmipgo.ResultReasonGeneralFailure, "dropped")
		}),
	})
	s, err := kmip.Connect(t.Context(), fake.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Create(t.Context(), "k", []byte("v"))
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Create on a dropped connection: got %v, want an UnreachableError", err)
	}
	if n := registers.Load(); n != 1 {
		t.Fatalf("Register sent %d times, want once", n)
	}
	// The idle connection is dropped too: Get's Locate goes out again on
	// a new connection and finds nothing.
	fake.dropAll()
	before := locates.Load()
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after the server dropped the idle connection: got %v, want keystore.ErrNotFound", err)
	}
	if n := locates.Load() - before; n != 1 {
		t.Fatalf("Locate answered %d times, want once", n)
	}
}

// TestDeadline: a server that takes a request and never answers holds
// the call only until its context's deadline, which ends in an
// UnreachableError; the next call gets a new connection.
func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	var hang atomic.Bool
	fake := startFake(t, nil, map[kmipgo.Operation]kmipserver.OperationHandler{
		kmipgo.OperationLocate: kmipserver.HandleFunc(func(ctx context.Context, req *payloads.LocateRequestPayload) (*payloads.LocateResponsePayload, error) {
			if hang.Load() {
				<-release
			}
			return &payloads.LocateResponsePayload{}, nil
		}),
	})
	t.Cleanup(func() { close(release) }) // runs before the server's cleanup
	s, err := kmip.Connect(t.Context(), fake.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hang.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Get(ctx, "k")
	if !keystore.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get from a server that does not answer: got %v, want an UnreachableError for the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get took %v past its 200ms deadline", d)
	}
	hang.Store(false)
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after the deadline: got %v, want keystore.ErrNotFound", err)
	}
}

// TestTLSVersion: the store offers TLS 1.2 and 1.3 only, so a server that
// speaks only TLS 1.0 and 1.1 (PyKMIP's default "Basic" suite) is refused.
func TestTLSVersion(t *testing.T) {
	offered := make(chan []uint16, 1)
	fake := startFake(t, &tls.Config{
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case offered <- hello.SupportedVersions:
			default:
			}
			return nil, nil
		},
	}, nil)
	_, err := kmip.Connect(t.Context(), fake.config(), nil)
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Connect to a TLS 1.1 server: got %v, want an UnreachableError", err)
	}
	for _, v := range <-offered {
		if v < tls.VersionTLS12 {
			t.Errorf("the client offered %s", tls.VersionName(v))
		}
	}
}
