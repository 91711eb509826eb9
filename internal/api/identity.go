package api

import (
	"net/http"
	"time"

	"github.com/openkes/kes"
)

type describeIdentityResponse struct {
	IsAdmin   bool      `json:"admin,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func (s *Server) describeIdentity(w http.ResponseWriter, r *request) {
	info, err := s.auth.DescribeIdentity(kes.Identity(r.Resource))
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, describeIdentityResponse{
		IsAdmin:   info.IsAdmin,
		Policy:    info.Policy,
		CreatedAt: info.CreatedAt,
		CreatedBy: info.CreatedBy.String(),
	})
}

// selfDescribeResponse is the flat shape that the kms-go SDK (MinIO, the
// upstream CLI) decodes, as release 2023-10-03 sent it. Upstream HEAD nests
// the policy instead, which that SDK cannot decode (api.md §4.7).
type selfDescribeResponse struct {
	Identity  kes.Identity `json:"identity"`
	IsAdmin   bool         `json:"admin,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy string       `json:"created_by,omitempty"`
	Policy    string       `json:"policy,omitempty"`
	Allow     patternSet   `json:"allow,omitempty"`
	Deny      patternSet   `json:"deny,omitempty"`
}

// describeSelf describes the caller. Upstream HEAD looks up the empty path
// instead of the caller and so answers 404 to every non-admin; we describe
// the caller, as intended.
func (s *Server) describeSelf(w http.ResponseWriter, r *request) {
	if r.Identity == "" {
		writeError(w, kes.ErrIdentityNotFound)
		return
	}
	info, err := s.auth.DescribeIdentity(r.Identity)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	resp := selfDescribeResponse{
		Identity:  r.Identity,
		IsAdmin:   info.IsAdmin,
		CreatedAt: info.CreatedAt,
		CreatedBy: info.CreatedBy.String(),
		Policy:    info.Policy,
	}
	if !info.IsAdmin {
		p, err := s.auth.PolicyOf(r.Identity)
		if err != nil {
			s.authError(w, r, err)
			return
		}
		resp.Allow, resp.Deny = newPatternSet(p.Allow), newPatternSet(p.Deny)
	}
	writeJSON(w, resp)
}

type listIdentitiesResponse struct {
	Identities []kes.Identity `json:"identities"`
	ContinueAt string         `json:"continue_at"`
}

func (s *Server) listIdentities(w http.ResponseWriter, r *request) {
	ids, err := s.auth.ListIdentities(r.Resource)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, listIdentitiesResponse{Identities: ids})
}
