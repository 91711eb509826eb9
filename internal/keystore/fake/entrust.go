package fake

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials, vault and box a [Entrust] server accepts. The box can be
// named by its id or its name.
const (
	EntrustUser     = "kes"
	EntrustPassword = "p4ssw0rd-secret"
	EntrustVaultID  = "1b2c3d4e-vault"
	EntrustBoxID    = "9f8e7d6c-box"
	EntrustBoxName  = "kes-box"
)

// Entrust is an in-process Entrust KeyControl vault server for the
// endpoints the entrust key store uses, all POST with JSON bodies and the
// session token in X-Vault-Auth: /vault/1.0/Login/<vault_id>/,
// /vault/1.0/Renew/, GetBox, CreateSecret, CheckoutSecret, DeleteSecret and
// ListSecretIds (sorted by name; next_token is base64 of JSON {"box_id",
// "next_ctx"} and a page holds the names after next_ctx). Errors are
// {"error": ...}; an unknown or expired token gets 401.
type Entrust struct {
	*vendorServer

	mu       sync.Mutex
	lifetime time.Duration
	tokens   map[string]time.Time
	secrets  map[string]*EntrustSecret
}

// EntrustSecret is a secret as the fake keeps it.
type EntrustSecret struct {
	Name    string
	Data    []byte // secret_data, decoded once from base64
	Expired bool
}

// NewEntrust starts a fake whose tokens live for an hour; it stops when the
// test ends.
func NewEntrust(t testing.TB) *Entrust {
	t.Helper()
	e := &Entrust{lifetime: time.Hour, tokens: map[string]time.Time{}, secrets: map[string]*EntrustSecret{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /vault/1.0/Login/{vault}/", e.login)
	mux.HandleFunc("POST /vault/1.0/Renew/", e.auth(e.renew))
	mux.HandleFunc("POST /vault/1.0/GetBox/", e.auth(e.box(e.getBox)))
	mux.HandleFunc("POST /vault/1.0/CreateSecret/", e.auth(e.box(e.create)))
	mux.HandleFunc("POST /vault/1.0/CheckoutSecret/", e.auth(e.box(e.checkout)))
	mux.HandleFunc("POST /vault/1.0/DeleteSecret/", e.auth(e.box(e.delete)))
	mux.HandleFunc("POST /vault/1.0/ListSecretIds/", e.auth(e.box(e.list)))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		vendorJSON(w, http.StatusNotFound, entrustErr("Not found"))
	})
	e.vendorServer = newVendorServer(t, mux)
	return e
}

// SetTokenLifetime sets the lifetime of tokens issued or renewed from now on.
func (e *Entrust) SetTokenLifetime(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lifetime = d
}

// ExpireTokens makes every token issued so far invalid.
func (e *Entrust) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.tokens)
}

// Put stores a secret as upstream KES creates it (secret_data = base64 of
// the stored value).
func (e *Entrust) Put(name string, value []byte, expired bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets[name] = &EntrustSecret{Name: name, Data: slices.Clone(value), Expired: expired}
}

// Secret returns a copy of the secret named name.
func (e *Entrust) Secret(name string) (EntrustSecret, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.secrets[name]
	if !ok {
		return EntrustSecret{}, false
	}
	c := *s
	c.Data = slices.Clone(s.Data)
	return c, true
}

func entrustErr(msg string) any { return map[string]string{"error": msg} }

func (e *Entrust) issue(w http.ResponseWriter, tok string) {
	e.mu.Lock()
	exp := time.Now().Add(e.lifetime)
	e.tokens[tok] = exp
	e.mu.Unlock()
	vendorJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_at": exp.UTC().Format(time.RFC3339Nano)})
}

func (e *Entrust) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !vendorDecode(w, r, &req, entrustErr) {
		return
	}
	if r.PathValue("vault") != EntrustVaultID {
		vendorJSON(w, http.StatusNotFound, entrustErr("Vault not found"))
		return
	}
	if req.Username != EntrustUser || subtle.ConstantTimeCompare([]byte(req.Password), []byte(EntrustPassword)) != 1 {
		vendorJSON(w, http.StatusUnauthorized, entrustErr("Invalid username or password"))
		return
	}
	e.issue(w, vendorID())
}

func (e *Entrust) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Vault-Auth")
		e.mu.Lock()
		exp, ok := e.tokens[tok]
		e.mu.Unlock()
		if tok == "" || !ok || time.Now().After(exp) {
			vendorJSON(w, http.StatusUnauthorized, entrustErr("Invalid or expired token"))
			return
		}
		h(w, r)
	}
}

func (e *Entrust) renew(w http.ResponseWriter, r *http.Request) {
	e.issue(w, r.Header.Get("X-Vault-Auth"))
}

// entrustReq is the union of the request bodies of the box calls.
type entrustReq struct {
	BoxID      string  `json:"box_id"`
	Name       *string `json:"name"`
	SecretData *string `json:"secret_data"`
	SecretID   *string `json:"secret_id"`
	MaxItems   *int    `json:"max_items"`
	NextToken  *string `json:"next_token"`
}

// box decodes the body and checks the box.
func (e *Entrust) box(h func(http.ResponseWriter, *entrustReq)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req entrustReq
		if !vendorDecode(w, r, &req, entrustErr) {
			return
		}
		if req.BoxID != EntrustBoxID && req.BoxID != EntrustBoxName {
			vendorJSON(w, http.StatusNotFound, entrustErr("Box not found"))
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		h(w, &req)
	}
}

func (e *Entrust) getBox(w http.ResponseWriter, _ *entrustReq) {
	vendorJSON(w, http.StatusOK, map[string]any{"box_id": EntrustBoxID, "name": EntrustBoxName, "secret_count": len(e.secrets)})
}

func (e *Entrust) create(w http.ResponseWriter, req *entrustReq) {
	if req.Name == nil || *req.Name == "" || req.SecretData == nil {
		vendorJSON(w, http.StatusBadRequest, entrustErr("name and secret_data are required"))
		return
	}
	data, err := base64.StdEncoding.DecodeString(*req.SecretData)
	if err != nil {
		vendorJSON(w, http.StatusBadRequest, entrustErr("secret_data is not base64"))
		return
	}
	if _, ok := e.secrets[*req.Name]; ok {
		vendorJSON(w, http.StatusConflict, entrustErr("Secret already exists"))
		return
	}
	e.secrets[*req.Name] = &EntrustSecret{Name: *req.Name, Data: data}
	vendorJSON(w, http.StatusOK, map[string]any{"box_id": EntrustBoxID, "secret_id": *req.Name})
}

func (e *Entrust) lookup(w http.ResponseWriter, req *entrustReq) *EntrustSecret {
	if req.SecretID != nil {
		if s, ok := e.secrets[*req.SecretID]; ok {
			return s
		}
	}
	vendorJSON(w, http.StatusNotFound, entrustErr("Secret not found"))
	return nil
}

func (e *Entrust) checkout(w http.ResponseWriter, req *entrustReq) {
	if s := e.lookup(w, req); s != nil {
		vendorJSON(w, http.StatusOK, map[string]any{
			"box_id": EntrustBoxID, "secret_id": s.Name, "secret_data": base64.StdEncoding.EncodeToString(s.Data),
		})
	}
}

func (e *Entrust) delete(w http.ResponseWriter, req *entrustReq) {
	if s := e.lookup(w, req); s != nil {
		delete(e.secrets, s.Name)
		vendorJSON(w, http.StatusOK, map[string]any{})
	}
}

// EntrustNextToken is the continuation token of ListSecretIds: base64 of
// JSON {"box_id", "next_ctx"}.
type EntrustNextToken struct {
	BoxID   string `json:"box_id"`
	NextCtx string `json:"next_ctx"`
}

func (e *Entrust) list(w http.ResponseWriter, req *entrustReq) {
	limit := 256
	if req.MaxItems != nil {
		limit = *req.MaxItems
	}
	var after string
	if req.NextToken != nil && *req.NextToken != "" {
		b, err := base64.StdEncoding.DecodeString(*req.NextToken)
		var tok EntrustNextToken
		if err != nil || json.Unmarshal(b, &tok) != nil || tok.BoxID != req.BoxID {
			vendorJSON(w, http.StatusBadRequest, entrustErr("invalid next_token"))
			return
		}
		after = tok.NextCtx
	}
	var names []string
	for name := range e.secrets {
		if req.NextToken == nil || *req.NextToken == "" || name > after {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, strings.Compare)
	resp := map[string]any{}
	if len(names) > limit {
		names = names[:limit]
		b, _ := json.Marshal(EntrustNextToken{BoxID: req.BoxID, NextCtx: names[limit-1]})
		resp["next_token"] = base64.StdEncoding.EncodeToString(b)
	}
	secrets := []map[string]any{}
	for _, n := range names {
		secrets = append(secrets, map[string]any{"name": n, "expired": e.secrets[n].Expired})
	}
	resp["secrets"] = secrets
	vendorJSON(w, http.StatusOK, resp)
}
