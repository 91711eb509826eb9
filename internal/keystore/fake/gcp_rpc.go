package fake

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The RPCs of the fake Secret Manager ([GCP]).

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
	i := strings.LastIndex(name, "/versions/")
	if i < 0 {
		return "", "", status.Errorf(codes.InvalidArgument, "invalid resource field value in the request: %q", name)
	}
	if id, err = g.secretID(name[:i]); err != nil {
		return "", "", err
	}
	return id, name[i+len("/versions/"):], nil
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
