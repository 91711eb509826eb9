package fake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
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
	certs, roots := newLoopbackCert(t)
	g := &GCP{
		Project:       "kes-project",
		ProjectNumber: "123456789012",
		roots:         roots,
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
		g.srv.Serve(lis)
	}()
	t.Cleanup(g.Stop)
	return g
}

// Endpoint is the host:port to give the client (option.WithEndpoint).
func (g *GCP) Endpoint() string { return g.addr }

// RootCAs returns a pool with the CA that signed the fake's certificate.
func (g *GCP) RootCAs() *x509.CertPool { return g.roots }

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

var secretIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// maxPayload is the service's limit of a version's data.
const maxPayload = 64 << 10

// secretID parses "projects/<project>/secrets/<id>" for the fake's project
// (by ID or number).
func (g *GCP) secretID(name string) (string, error) {
	rest, ok := g.cutProject(name)
	id, ok2 := strings.CutPrefix(rest, "/secrets/")
	if !ok || !ok2 || !secretIDPattern.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "invalid resource field value in the request: %q", name)
	}
	return id, nil
}

func (g *GCP) cutProject(name string) (string, bool) {
	for _, p := range []string{g.Project, g.ProjectNumber} {
		if rest, ok := strings.CutPrefix(name, "projects/"+p); ok {
			return rest, true
		}
	}
	return "", false
}

// versionName parses ".../secrets/<id>/versions/<n|latest>".
func (g *GCP) versionName(name string) (id, version string, err error) {
	secret, version, ok := strings.Cut(name[min(len(name), strings.Index(name, "/secrets/")+len("/secrets/")):], "/versions/")
	if !ok {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid resource field value in the request: %q", name)
	}
	id, err = g.secretID(strings.TrimSuffix(name, "/versions/"+version))
	if err != nil || id != secret {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid resource field value in the request: %q", name)
	}
	return id, version, nil
}

func (g *GCP) secretName(id string) string {
	return "projects/" + g.ProjectNumber + "/secrets/" + id
}

func (g *GCP) etag() string {
	g.seq++
	return strconv.Quote(strconv.FormatInt(int64(g.seq)*7919, 16))
}

func (g *GCP) newSecret(id string) *gcpSecret {
	g.seq++
	s := &gcpSecret{id: id, order: g.seq, created: time.Now(), etag: g.etag()}
	g.secrets[id] = s
	return s
}

func (g *GCP) addVersion(s *gcpSecret, data []byte) *gcpVersion {
	v := &gcpVersion{state: secretmanagerpb.SecretVersion_ENABLED, data: slices.Clone(data), etag: g.etag(), created: time.Now()}
	s.versions = append(s.versions, v)
	return v
}

func (g *GCP) secretPB(s *gcpSecret) *secretmanagerpb.Secret {
	return &secretmanagerpb.Secret{
		Name: g.secretName(s.id),
		Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		},
		CreateTime: timestamppb.New(s.created),
		Etag:       s.etag,
	}
}

func (g *GCP) versionPB(s *gcpSecret, n int) *secretmanagerpb.SecretVersion {
	v := s.versions[n-1]
	pb := &secretmanagerpb.SecretVersion{
		Name:       fmt.Sprintf("%s/versions/%d", g.secretName(s.id), n),
		CreateTime: timestamppb.New(v.created),
		State:      v.state,
		Etag:       v.etag,
	}
	if v.state == secretmanagerpb.SecretVersion_DESTROYED {
		pb.DestroyTime = timestamppb.New(v.created)
	}
	return pb
}

// CreateSecret implements the RPC: a secret without versions.
func (g *GCP) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	if rest, ok := g.cutProject(req.GetParent()); !ok || rest != "" {
		return nil, status.Errorf(codes.NotFound, "Project [%s] not found", req.GetParent())
	}
	if !secretIDPattern.MatchString(req.GetSecretId()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret_id %q", req.GetSecretId())
	}
	if req.GetSecret().GetReplication().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "Secret.replication is required")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.secrets[req.GetSecretId()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", g.secretName(req.GetSecretId()))
	}
	return g.secretPB(g.newSecret(req.GetSecretId())), nil
}

// GetSecret implements the RPC.
func (g *GCP) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, err := g.lookup(req.GetName())
	if err != nil {
		return nil, err
	}
	return g.secretPB(s), nil
}

func (g *GCP) lookup(name string) (*gcpSecret, error) {
	id, err := g.secretID(name)
	if err != nil {
		return nil, err
	}
	s, ok := g.secrets[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", g.secretName(id))
	}
	return s, nil
}

// DeleteSecret implements the RPC: the secret and all its versions.
func (g *GCP) DeleteSecret(_ context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, err := g.lookup(req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != s.etag {
		return nil, status.Error(codes.Aborted, "etag mismatch")
	}
	delete(g.secrets, s.id)
	return &emptypb.Empty{}, nil
}

// ListSecrets implements the RPC, newest first, in pages.
func (g *GCP) ListSecrets(_ context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	if rest, ok := g.cutProject(req.GetParent()); !ok || rest != "" {
		return nil, status.Errorf(codes.NotFound, "Project [%s] not found", req.GetParent())
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "fake: filters are not supported")
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > g.pageSize {
		size = g.pageSize
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	all := make([]*gcpSecret, 0, len(g.secrets))
	for _, s := range g.secrets {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *gcpSecret) int { return b.order - a.order })
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page token")
		}
		// The token is the order of the last secret returned: secrets
		// created or deleted meanwhile do not shift the next page.
		last, err := strconv.Atoi(string(b))
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page token")
		}
		start = len(all)
		for i, s := range all {
			if s.order < last {
				start = i
				break
			}
		}
	}
	resp := &secretmanagerpb.ListSecretsResponse{TotalSize: int32(len(all))}
	end := min(start+size, len(all))
	for _, s := range all[start:end] {
		resp.Secrets = append(resp.Secrets, g.secretPB(s))
	}
	if end < len(all) {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(all[end-1].order)))
	}
	return resp, nil
}

// AddSecretVersion implements the RPC. A payload checksum, if sent, must
// match.
func (g *GCP) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	data := req.GetPayload().GetData()
	if len(data) > maxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "Secret Version payload must be no larger than %d bytes", maxPayload)
	}
	if c := req.GetPayload().DataCrc32C; c != nil && *c != int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) {
		return nil, status.Error(codes.InvalidArgument, "Checksum mismatch")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s, err := g.lookup(req.GetParent())
	if err != nil {
		return nil, err
	}
	g.addVersion(s, data)
	s.etag = g.etag()
	return g.versionPB(s, len(s.versions)), nil
}

// version resolves a version name ("latest" is the newest) under g.mu.
func (g *GCP) version(name string) (*gcpSecret, int, error) {
	id, ver, err := g.versionName(name)
	if err != nil {
		return nil, 0, err
	}
	s, ok := g.secrets[id]
	if !ok {
		return nil, 0, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", g.secretName(id))
	}
	n := len(s.versions)
	if ver != "latest" {
		if n, err = strconv.Atoi(ver); err != nil || n < 1 {
			return nil, 0, status.Errorf(codes.InvalidArgument, "invalid version %q", ver)
		}
	}
	if n < 1 || n > len(s.versions) {
		return nil, 0, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", g.secretName(id), ver)
	}
	return s, n, nil
}

// GetSecretVersion implements the RPC.
func (g *GCP) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, n, err := g.version(req.GetName())
	if err != nil {
		return nil, err
	}
	return g.versionPB(s, n), nil
}

// AccessSecretVersion implements the RPC: the data of an ENABLED version
// with its CRC32C.
func (g *GCP) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, n, err := g.version(req.GetName())
	if err != nil {
		return nil, err
	}
	v := s.versions[n-1]
	if v.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", g.versionPB(s, n).Name, v.state)
	}
	sum := int64(crc32.Checksum(v.data, crc32.MakeTable(crc32.Castagnoli)))
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    g.versionPB(s, n).Name,
		Payload: &secretmanagerpb.SecretPayload{Data: slices.Clone(v.data), DataCrc32C: &sum},
	}, nil
}

// ListSecretVersions implements the RPC (one page, newest first).
func (g *GCP) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, err := g.lookup(req.GetParent())
	if err != nil {
		return nil, err
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{TotalSize: int32(len(s.versions))}
	for n := len(s.versions); n >= 1; n-- {
		resp.Versions = append(resp.Versions, g.versionPB(s, n))
	}
	return resp, nil
}

// DisableSecretVersion implements the RPC.
func (g *GCP) DisableSecretVersion(_ context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return g.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DISABLED)
}

// EnableSecretVersion implements the RPC.
func (g *GCP) EnableSecretVersion(_ context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return g.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_ENABLED)
}

// DestroySecretVersion implements the RPC: the data is gone for good.
func (g *GCP) DestroySecretVersion(_ context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return g.changeState(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DESTROYED)
}

func (g *GCP) changeState(name, etag string, state secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, n, err := g.version(name)
	if err != nil {
		return nil, err
	}
	v := s.versions[n-1]
	switch {
	case etag != "" && etag != v.etag:
		return nil, status.Error(codes.Aborted, "etag mismatch")
	case v.state == secretmanagerpb.SecretVersion_DESTROYED:
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", g.versionPB(s, n).Name)
	}
	v.state = state
	if state == secretmanagerpb.SecretVersion_DESTROYED {
		v.data = nil
	}
	v.etag = g.etag()
	return g.versionPB(s, n), nil
}

// newLoopbackCert returns a certificate for 127.0.0.1 and localhost signed
// by a fresh CA, and a pool with that CA.
func newLoopbackCert(t testing.TB) ([]tls.Certificate, *x509.CertPool) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, pool
}
