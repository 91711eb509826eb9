package fake

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// GemaltoRefreshToken is the refresh token a [Gemalto] server accepts.
const GemaltoRefreshToken = "ehTdmWGS7fBqRefreshToken"

// Gemalto is an in-process Thales CipherTrust Manager (KeySecure) server for
// the endpoints the gemalto key store uses: POST /api/v1/auth/tokens
// (refresh-token grant → a bearer JWT valid for a number of seconds), POST
// /api/v1/vault/secrets, POST /api/v1/vault/secrets/<name>/export?type=name,
// DELETE /api/v1/vault/secrets/<name>?type=name, GET
// /api/v1/vault/secrets?limit=&skip= (newest first, as a real server lists
// by creation) and GET / (any answer means reachable). Errors are
// {"code": int, "codeDesc": string}; an unknown or expired JWT gets 401.
type Gemalto struct {
	*vendorServer

	mu       sync.Mutex
	duration int // seconds a new JWT is valid
	tokens   map[string]time.Time
	secrets  []*GemaltoSecret // in creation order
}

// GemaltoSecret is a vault secret as the fake keeps it.
type GemaltoSecret struct {
	ID, Name, DataType, Material string
}

// NewGemalto starts a fake whose JWTs are valid for 300 seconds; it stops
// when the test ends.
func NewGemalto(t testing.TB) *Gemalto {
	t.Helper()
	g := &Gemalto{duration: 300, tokens: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/tokens", g.login)
	mux.HandleFunc("POST /api/v1/vault/secrets", g.bearer(g.create))
	mux.HandleFunc("GET /api/v1/vault/secrets", g.bearer(g.list))
	mux.HandleFunc("POST /api/v1/vault/secrets/{name}/export", g.bearer(g.export))
	mux.HandleFunc("DELETE /api/v1/vault/secrets/{name}", g.bearer(g.delete))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("CipherTrust Manager")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		vendorJSON(w, http.StatusNotFound, gemaltoErr(5, "NCERRResourceNotFound: no such endpoint"))
	})
	g.vendorServer = newVendorServer(t, mux)
	return g
}

// SetTokenDuration sets the lifetime, in seconds, of JWTs issued from now on.
func (g *Gemalto) SetTokenDuration(seconds int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.duration = seconds
}

// ExpireTokens makes every JWT issued so far invalid, as if it had expired.
func (g *Gemalto) ExpireTokens() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.tokens)
}

// Put stores a secret as upstream KES creates it (material = stored value).
func (g *Gemalto) Put(name, material string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.secrets = append(g.secrets, &GemaltoSecret{ID: vendorID(), Name: name, DataType: "seed", Material: material})
}

// Secret returns a copy of the secret named name.
func (g *Gemalto) Secret(name string) (GemaltoSecret, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := g.find(name); i >= 0 {
		return *g.secrets[i], true
	}
	return GemaltoSecret{}, false
}

func (g *Gemalto) find(name string) int {
	return slices.IndexFunc(g.secrets, func(s *GemaltoSecret) bool { return s.Name == name })
}

func gemaltoErr(code int, desc string) any { return map[string]any{"code": code, "codeDesc": desc} }

func (g *Gemalto) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grant_type"`
		RefreshToken string `json:"refresh_token"`
		Domain       string `json:"domain"`
	}
	if !vendorDecode(w, r, &req, func(s string) any { return gemaltoErr(1, s) }) {
		return
	}
	if req.GrantType != "refresh_token" ||
		subtle.ConstantTimeCompare([]byte(req.RefreshToken), []byte(GemaltoRefreshToken)) != 1 {
		vendorJSON(w, http.StatusUnauthorized, gemaltoErr(3, "NCERRAuthenticationFailed: invalid refresh token"))
		return
	}
	jwt := "eyJ." + vendorID()
	g.mu.Lock()
	d := g.duration
	g.tokens[jwt] = time.Now().Add(time.Duration(d) * time.Second)
	g.mu.Unlock()
	vendorJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "jwt": jwt, "duration": d, "client_id": vendorID()})
}

func (g *Gemalto) bearer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		g.mu.Lock()
		exp, known := g.tokens[tok]
		g.mu.Unlock()
		if !ok || !known || time.Now().After(exp) {
			vendorJSON(w, http.StatusUnauthorized, gemaltoErr(2, "NCERRAuthTokenExpired: token is expired or invalid"))
			return
		}
		h(w, r)
	}
}

func (g *Gemalto) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DataType string  `json:"dataType"`
		Material *string `json:"material"`
		Name     string  `json:"name"`
	}
	if !vendorDecode(w, r, &req, func(s string) any { return gemaltoErr(1, s) }) {
		return
	}
	if req.DataType != "seed" || req.Material == nil || req.Name == "" {
		vendorJSON(w, http.StatusBadRequest, gemaltoErr(1, "NCERRInvalidParamValue: name, dataType seed and material required"))
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.find(req.Name) >= 0 {
		vendorJSON(w, http.StatusConflict, gemaltoErr(4, "NCERRResourceAlreadyExists: Resource already exists"))
		return
	}
	s := &GemaltoSecret{ID: vendorID(), Name: req.Name, DataType: req.DataType, Material: *req.Material}
	g.secrets = append(g.secrets, s)
	vendorJSON(w, http.StatusCreated, map[string]any{"id": s.ID, "name": s.Name, "dataType": s.DataType})
}

// lookup finds the secret of the path: by name only with ?type=name.
func (g *Gemalto) lookup(w http.ResponseWriter, r *http.Request) int {
	i := -1
	if r.URL.Query().Get("type") == "name" {
		i = g.find(r.PathValue("name"))
	}
	if i < 0 {
		vendorJSON(w, http.StatusNotFound, gemaltoErr(5, "NCERRResourceNotFound: Resource not found"))
	}
	return i
}

func (g *Gemalto) export(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := g.lookup(w, r); i >= 0 {
		s := g.secrets[i]
		vendorJSON(w, http.StatusOK, map[string]any{"id": s.ID, "name": s.Name, "dataType": s.DataType, "material": s.Material})
	}
}

func (g *Gemalto) delete(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := g.lookup(w, r); i >= 0 {
		g.secrets = slices.Delete(g.secrets, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (g *Gemalto) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err1 := strconv.Atoi(q.Get("limit"))
	skip, err2 := strconv.Atoi(q.Get("skip"))
	if err1 != nil || err2 != nil || limit < 1 || limit > 1000 || skip < 0 {
		vendorJSON(w, http.StatusBadRequest, gemaltoErr(1, "NCERRInvalidParamValue: limit and skip"))
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	res := []map[string]any{}
	total := len(g.secrets)
	for i := total - 1 - skip; i >= 0 && len(res) < limit; i-- { // newest first
		s := g.secrets[i]
		res = append(res, map[string]any{"id": s.ID, "name": s.Name, "dataType": s.DataType})
	}
	vendorJSON(w, http.StatusOK, map[string]any{"skip": skip, "limit": limit, "total": total, "resources": res})
}
