package fake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/openkes/kes/internal/proxytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// GCP is an in-process Google Cloud Secret Manager: the SDK's own
// secretmanagerpb.SecretManagerServiceServer served over TLS on loopback,
// so the real cloud.google.com/go/secretmanager client talks to it.
//
// It keeps secrets with numbered versions (ENABLED, DISABLED, DESTROYED),
// ETags, the service's error codes (NOT_FOUND, ALREADY_EXISTS,
// FAILED_PRECONDITION, ABORTED on an ETag mismatch, INVALID_ARGUMENT), and
// answers with the project number in resource names, as the service does.
// Every RPC must carry "authorization: Bearer <token>": a self-signed JWT of
// a service account made by [GCP.ServiceAccount], or an access token issued
// by the fake metadata server ([GCP.MetadataHost]).
//
// Create it with [StartGCP]; it stops when the test ends. It is safe for
// concurrent use.
type GCP struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	// Project is the project ID clients use; ProjectNumber is the number
	// the service puts into the names it returns.
	Project       string
	ProjectNumber string

	roots    *x509.CertPool
	caPEM    []byte
	addr     string
	srv      *grpc.Server
	served   chan struct{}
	auth     gcpAuth
	meta     *gcpMetadata
	pageSize int

	mu       sync.Mutex
	secrets  map[string]*gcpSecret // by secret ID
	seq      int                   // creation order and ETag source
	requests []GCPRequest
	failures []GCPFailure
	stalls   map[string]chan struct{} // method → closed to release
	stalled  chan string
	conns    atomic.Int64 // connections accepted
}

// GCPRequest is one RPC the fake received.
type GCPRequest struct {
	Method string        // e.g. "CreateSecret"
	Msg    proto.Message // a copy of the request message
	Token  string        // the bearer token it carried
}

// GCPFailure makes the next call of Method ("" for any) fail with Code.
// With After set, the call takes effect first and its answer is then lost
// (a response that never arrives).
type GCPFailure struct {
	Method string
	Code   codes.Code
	After  bool
}

type gcpSecret struct {
	id       string
	order    int
	created  time.Time
	etag     string
	versions []*gcpVersion // versions[i] is version i+1
}

type gcpVersion struct {
	state   secretmanagerpb.SecretVersion_State
	data    []byte
	etag    string
	created time.Time
}

// GCPOptions adjust a fake.
type GCPOptions struct {
	// MaxPageSize bounds ListSecrets pages. If zero, 25000 (the service's
	// maximum) is used.
	MaxPageSize int
}

// StartGCP starts a fake for project "kes-project" (number 123456789012) on a
// loopback TLS listener with a certificate of a fresh test CA ([GCP.RootCAs]).
func StartGCP(t testing.TB, opts GCPOptions) *GCP {
	t.Helper()
	certs, roots, caPEM := newLoopbackCert(t)
	g := &GCP{
		Project:       "kes-project",
		ProjectNumber: "123456789012",
		roots:         roots,
		caPEM:         caPEM,
		served:        make(chan struct{}),
		pageSize:      opts.MaxPageSize,
		secrets:       make(map[string]*gcpSecret),
		stalls:        make(map[string]chan struct{}),
		stalled:       make(chan string, 64),
	}
	if g.pageSize <= 0 {
		g.pageSize = 25000
	}
	g.auth.init()
	g.meta = startGCPMetadata(t, &g.auth)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = lis.Addr().String()
	g.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12})),
		grpc.UnaryInterceptor(g.intercept),
	)
	secretmanagerpb.RegisterSecretManagerServiceServer(g.srv, g)
	go func() {
		defer close(g.served)
		g.srv.Serve(countingListener{lis, &g.conns})
	}()
	t.Cleanup(g.Stop)
	return g
}

// Endpoint is the host:port to give the client (option.WithEndpoint).
func (g *GCP) Endpoint() string { return g.addr }

// RootCAs returns a pool with the CA that signed the fake's certificate.
func (g *GCP) RootCAs() *x509.CertPool { return g.roots }

// CACertPEM returns that CA certificate in PEM, for a process that is to
// trust the fake through its system roots (SSL_CERT_FILE).
func (g *GCP) CACertPEM() []byte { return g.caPEM }

// Stop stops the server at once (open calls fail) and waits for it. Later
// calls find nothing listening. It is safe to call more than once.
func (g *GCP) Stop() {
	g.srv.Stop()
	<-g.served
}

// Requests returns the RPCs received so far, oldest first.
func (g *GCP) Requests() []GCPRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.requests)
}

// Fail queues failures; each is used by one matching call.
func (g *GCP) Fail(f ...GCPFailure) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = append(g.failures, f...)
}

// Stall makes calls of method wait until the returned release function is
// called or the caller gives up. [GCP.Stalled] receives the method each
// time a call starts waiting.
func (g *GCP) Stall(method string) (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.stalls[method] = ch
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			delete(g.stalls, method)
			g.mu.Unlock()
			close(ch)
		})
	}
}

// Stalled receives the method of every call that starts waiting in a Stall.
func (g *GCP) Stalled() <-chan string { return g.stalled }

// Connections returns the number of connections accepted so far (gRPC and
// plain HTTPS requests such as a status probe share the listener).
func (g *GCP) Connections() int64 { return g.conns.Load() }

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// PutSecret stores a secret with the given versions directly, as another
// client (for example upstream KES) would have left it. A nil entry is a
// destroyed version.
func (g *GCP) PutSecret(id string, versions ...[]byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.newSecret(id)
	for _, v := range versions {
		ver := g.addVersion(s, v)
		if v == nil {
			ver.state = secretmanagerpb.SecretVersion_DESTROYED
		}
	}
}

// SetVersionState changes the state of version n of secret id; it reports
// whether that version exists.
func (g *GCP) SetVersionState(id string, n int, state secretmanagerpb.SecretVersion_State) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.secrets[id]
	if !ok || n < 1 || n > len(s.versions) {
		return false
	}
	v := s.versions[n-1]
	v.state = state
	if state == secretmanagerpb.SecretVersion_DESTROYED {
		v.data = nil
	}
	v.etag = g.etag()
	return true
}

// Versions returns the data of every version of secret id (nil for a
// destroyed one), or false if there is no such secret.
func (g *GCP) Versions(id string) ([][]byte, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.secrets[id]
	if !ok {
		return nil, false
	}
	out := make([][]byte, len(s.versions))
	for i, v := range s.versions {
		out[i] = slices.Clone(v.data)
	}
	return out, true
}

func (g *GCP) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	token := bearer(ctx)
	g.mu.Lock()
	g.requests = append(g.requests, GCPRequest{Method: method, Msg: proto.Clone(req.(proto.Message)), Token: token})
	var fail *GCPFailure
	for i, f := range g.failures {
		if f.Method == "" || f.Method == method {
			fail = &f
			g.failures = slices.Delete(g.failures, i, i+1)
			break
		}
	}
	stall := g.stalls[method]
	g.mu.Unlock()

	if err := g.auth.check(token); err != nil {
		return nil, err
	}
	if stall != nil {
		select {
		case g.stalled <- method:
		default:
		}
		select {
		case <-stall:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	failure := func() error {
		return status.Errorf(fail.Code, "injected %s failure of %s", fail.Code, method)
	}
	if fail != nil && !fail.After {
		return nil, failure()
	}
	resp, err := handler(ctx, req)
	if fail != nil {
		return nil, failure()
	}
	return resp, err
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return tok
		}
	}
	return ""
}

// newLoopbackCert returns a certificate for 127.0.0.1 and localhost signed
// by a fresh CA, a pool with that CA and the CA certificate in PEM.
func newLoopbackCert(t testing.TB) ([]tls.Certificate, *x509.CertPool, []byte) {
	t.Helper()
	ca := proxytest.NewCA(t)
	c := ca.Issue(t, "127.0.0.1", proxytest.ServerAuth)
	return []tls.Certificate{c.TLS}, ca.Pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}
