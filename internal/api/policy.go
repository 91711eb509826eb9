package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

var errInternal = kes.NewError(http.StatusInternalServerError, "internal server error")

// authError writes the answer for an error of the authorizer, whose errors
// are *kes.Error values with upstream's texts.
func (s *Server) authError(w http.ResponseWriter, r *request, err error) {
	var e *kes.Error
	if errors.As(err, &e) {
		writeError(w, e)
		return
	}
	s.errLog.Error(err.Error(), reqAttrs(r))
	writeError(w, errInternal)
}

func (s *Server) describePolicy(w http.ResponseWriter, r *request) {
	p, err := r.state.auth.DescribePolicy(r.Resource)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, kes.DescribePolicyResponse{Name: p.Name, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy})
}

// newPatternSet returns patterns as upstream encodes them: object keys
// with empty objects as values.
func newPatternSet(patterns []string) kes.PatternSet {
	if len(patterns) == 0 {
		return nil
	}
	set := make(kes.PatternSet, len(patterns))
	for _, p := range patterns {
		set[p] = struct{}{}
	}
	return set
}

func (s *Server) readPolicy(w http.ResponseWriter, r *request) {
	p, err := r.state.auth.DescribePolicy(r.Resource)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, kes.GetPolicyResponse{
		Name:      p.Name,
		Allow:     newPatternSet(p.Allow),
		Deny:      newPatternSet(p.Deny),
		CreatedAt: p.CreatedAt,
		CreatedBy: p.CreatedBy,
	})
}

func (s *Server) listPolicies(w http.ResponseWriter, r *request) {
	policies, err := r.state.auth.ListPolicies(r.Resource)
	if err != nil {
		s.authError(w, r, err)
		return
	}
	writeJSON(w, kes.ListPoliciesResponse{Names: policies})
}

// writePolicyRequest accepts both policy bodies of the legacy write route:
// {"paths":[...]} (≤ v0.14) and {"allow":[...],"deny":[...]}.
type writePolicyRequest struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
	Paths []string `json:"paths"`
}

func (s *Server) writePolicy(w http.ResponseWriter, r *request) {
	var req writePolicyRequest
	if !readJSON(r, &req) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	allow := append(req.Allow, req.Paths...)
	if err := r.state.auth.WritePolicy(r.Identity, r.Resource, allow, req.Deny); err != nil {
		s.authError(w, r, err)
		return
	}
	writeOK(w)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *request) {
	if err := r.state.auth.DeletePolicy(r.Identity, r.Resource); err != nil {
		s.authError(w, r, err)
		return
	}
	writeOK(w)
}

// assignPolicy serves POST /v1/policy/assign/<policy> {"identity": ...}.
func (s *Server) assignPolicy(w http.ResponseWriter, r *request) {
	var req kes.AssignPolicyRequest
	if !readJSON(r, &req) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	if err := r.state.auth.Assign(r.Identity, r.Resource, req.Identity); err != nil {
		s.authError(w, r, err)
		return
	}
	writeOK(w)
}

// assignIdentity serves POST /v1/identity/assign/<policy>/<identity>.
func (s *Server) assignIdentity(w http.ResponseWriter, r *request) {
	policy, id, _ := strings.Cut(r.Resource, "/")
	if err := r.state.auth.Assign(r.Identity, policy, kes.Identity(id)); err != nil {
		s.authError(w, r, err)
		return
	}
	writeOK(w)
}

// forgetIdentity serves the legacy forget and delete identity routes.
func (s *Server) forgetIdentity(w http.ResponseWriter, r *request) {
	if err := r.state.auth.DeleteIdentity(r.Identity, kes.Identity(r.Resource)); err != nil {
		s.authError(w, r, err)
		return
	}
	writeOK(w)
}

// Compile-time check that the authorizer has what the handlers call.
var _ interface {
	DescribePolicy(string) (auth.PolicyInfo, error)
} = (*auth.Authorizer)(nil)
