package api

import (
	"net/http"

	"github.com/openkes/kes"
)

func (s *Server) describeIdentity(w http.ResponseWriter, r *request) {
	info, err := r.state.auth.DescribeIdentity(kes.Identity(r.Resource))
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, kes.DescribeIdentityResponse{
		IsAdmin:   info.IsAdmin,
		Policy:    info.Policy,
		CreatedAt: info.CreatedAt,
		CreatedBy: info.CreatedBy,
	})
}

// describeSelf describes the caller. Upstream HEAD looks up the empty path
// instead of the caller and so answers 404 to every non-admin; we describe
// the caller, as intended.
func (s *Server) describeSelf(w http.ResponseWriter, r *request) {
	if r.Identity == "" {
		writeError(w, kes.ErrIdentityNotFound)
		return
	}
	info, err := r.state.auth.DescribeIdentity(r.Identity)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	// The flat shape that the kms-go SDK (MinIO, the upstream CLI) decodes,
	// as release 2023-10-03 sent it; HEAD nests the policy (api.md §4.7).
	resp := kes.DescribeSelfResponse{
		Identity:   r.Identity,
		IsAdmin:    info.IsAdmin,
		CreatedAt:  info.CreatedAt,
		CreatedBy:  info.CreatedBy,
		PolicyName: info.Policy,
	}
	if !info.IsAdmin {
		p, err := r.state.auth.PolicyOf(r.Identity)
		if err != nil {
			s.authError(w, r, err)
			return
		}
		resp.Allow, resp.Deny = newPatternSet(p.Allow), newPatternSet(p.Deny)
	}
	writeJSON(w, resp)
}

func (s *Server) listIdentities(w http.ResponseWriter, r *request) {
	ids, err := r.state.auth.ListIdentities(r.Resource)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, kes.ListIdentitiesResponse{Identities: ids})
}
