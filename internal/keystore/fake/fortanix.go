package fake

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FortanixAPIKey is the API key a [Fortanix] server accepts unless told
// otherwise with [Fortanix.SetAPIKey]. Fortanix API keys are base64 of
// "app-id:secret" and sent verbatim after "Basic ".
const FortanixAPIKey = "YXBwLWlkOnNlY3JldA=="

// Fortanix is an in-process Fortanix DSM (SDKMS) server for the endpoints
// the fortanix key store uses: GET /sys/v1/health, POST
// /sys/v1/session/auth and /sys/v1/session/terminate, PUT /crypto/v1/keys,
// POST /crypto/v1/keys/export, DELETE /crypto/v1/keys/<kid>, GET
// /crypto/v1/keys (sort=name:asc, limit <= 1000, start = first name,
// inclusive unless told otherwise) and GET / (any answer means reachable).
// Errors are {"message": ...}.
type Fortanix struct {
	*vendorServer

	mu        sync.Mutex
	exclusive bool // start lists names after it, not from it
	apiKey    string
	sessions  map[string]bool
	keys      map[string]*FortanixObject // by name
}

// FortanixObject is a security object as the fake keeps it.
type FortanixObject struct {
	Kid, Name, GroupID string
	ObjType            string
	KeyOps             []string
	Value              []byte // decoded from the base64 of the request
	Enabled            bool
}

// NewFortanix starts a fake accepting [FortanixAPIKey]; it stops when the
// test ends.
func NewFortanix(t testing.TB) *Fortanix {
	t.Helper()
	f := &Fortanix{apiKey: FortanixAPIKey, sessions: map[string]bool{}, keys: map[string]*FortanixObject{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sys/v1/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /sys/v1/session/auth", f.auth)
	mux.HandleFunc("POST /sys/v1/session/terminate", f.terminate)
	mux.HandleFunc("PUT /crypto/v1/keys", f.basic(f.create))
	mux.HandleFunc("GET /crypto/v1/keys", f.basic(f.list))
	mux.HandleFunc("POST /crypto/v1/keys/export", f.basic(f.export))
	mux.HandleFunc("DELETE /crypto/v1/keys/{kid}", f.basic(f.delete))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("Fortanix DSM")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		vendorJSON(w, http.StatusNotFound, fortanixErr("no such endpoint"))
	})
	f.vendorServer = newVendorServer(t, mux)
	return f
}

// SetAPIKey changes the accepted API key, e.g. to play a revoked one.
func (f *Fortanix) SetAPIKey(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apiKey = key
}

// SetStartExclusive makes the listing's start exclusive (names after it)
// instead of inclusive, the other reading of DSM's documentation.
func (f *Fortanix) SetStartExclusive(exclusive bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exclusive = exclusive
}

// Put stores an object as upstream KES creates it (value = stored value),
// bypassing the API.
func (f *Fortanix) Put(name string, value []byte, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[name] = &FortanixObject{Kid: vendorUUID(), Name: name, ObjType: "OPAQUE",
		KeyOps: []string{"EXPORT", "APPMANAGEABLE"}, Value: slices.Clone(value), Enabled: enabled}
}

// Object returns a copy of the object named name.
func (f *Fortanix) Object(name string) (FortanixObject, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.keys[name]
	if !ok {
		return FortanixObject{}, false
	}
	c := *o
	c.KeyOps = slices.Clone(o.KeyOps)
	c.Value = slices.Clone(o.Value)
	return c, true
}

// Sessions returns the number of session tokens issued and not terminated.
func (f *Fortanix) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func fortanixErr(msg string) any { return map[string]string{"message": msg} }

func (f *Fortanix) checkBasic(r *http.Request) bool {
	f.mu.Lock()
	key := f.apiKey
	f.mu.Unlock()
	got := r.Header.Get("Authorization")
	return subtle.ConstantTimeCompare([]byte(got), []byte("Basic "+key)) == 1
}

func (f *Fortanix) basic(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.checkBasic(r) {
			vendorJSON(w, http.StatusUnauthorized, fortanixErr("Invalid API key"))
			return
		}
		h(w, r)
	}
}

func (f *Fortanix) auth(w http.ResponseWriter, r *http.Request) {
	if !f.checkBasic(r) {
		vendorJSON(w, http.StatusUnauthorized, fortanixErr("Invalid API key"))
		return
	}
	tok := vendorID()
	f.mu.Lock()
	f.sessions[tok] = true
	f.mu.Unlock()
	vendorJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": 600, "access_token": tok, "entity_id": vendorUUID(),
	})
}

func (f *Fortanix) terminate(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok || !f.sessions[tok] {
		vendorJSON(w, http.StatusUnauthorized, fortanixErr("Invalid session"))
		return
	}
	delete(f.sessions, tok)
	w.WriteHeader(http.StatusNoContent)
}

type fortanixCreate struct {
	ObjType string   `json:"obj_type"`
	Name    *string  `json:"name"`
	GroupID *string  `json:"group_id"`
	KeyOps  []string `json:"key_ops"`
	Value   string   `json:"value"`
	Enabled *bool    `json:"enabled"`
}

func (f *Fortanix) create(w http.ResponseWriter, r *http.Request) {
	var req fortanixCreate
	if !vendorDecode(w, r, &req, fortanixErr) {
		return
	}
	value, err := base64.StdEncoding.DecodeString(req.Value)
	switch {
	case req.ObjType != "OPAQUE":
		vendorJSON(w, http.StatusBadRequest, fortanixErr("obj_type must be OPAQUE for an imported value"))
		return
	case req.Name == nil || *req.Name == "":
		vendorJSON(w, http.StatusBadRequest, fortanixErr("missing name"))
		return
	case err != nil || req.Value == "":
		vendorJSON(w, http.StatusBadRequest, fortanixErr("value is not base64"))
		return
	}
	o := &FortanixObject{Kid: vendorUUID(), Name: *req.Name, ObjType: req.ObjType, KeyOps: req.KeyOps,
		Value: value, Enabled: req.Enabled == nil || *req.Enabled}
	if req.GroupID != nil {
		o.GroupID = *req.GroupID
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.keys[o.Name]; ok {
		vendorJSON(w, http.StatusConflict, fortanixErr("sobject already exists"))
		return
	}
	f.keys[o.Name] = o
	vendorJSON(w, http.StatusCreated, map[string]any{"kid": o.Kid, "name": o.Name, "obj_type": o.ObjType, "enabled": o.Enabled})
}

func (f *Fortanix) export(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if !vendorDecode(w, r, &req, fortanixErr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.keys[req.Name]
	if !ok {
		vendorJSON(w, http.StatusNotFound, fortanixErr("sobject does not exist"))
		return
	}
	vendorJSON(w, http.StatusOK, map[string]any{
		"kid": o.Kid, "name": o.Name, "obj_type": o.ObjType, "enabled": o.Enabled,
		"value": base64.StdEncoding.EncodeToString(o.Value),
	})
}

func (f *Fortanix) delete(w http.ResponseWriter, r *http.Request) {
	kid := r.PathValue("kid")
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, o := range f.keys {
		if o.Kid == kid {
			delete(f.keys, name)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	vendorJSON(w, http.StatusNotFound, fortanixErr("sobject does not exist"))
}

func (f *Fortanix) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("sort") != "name:asc" {
		vendorJSON(w, http.StatusBadRequest, fortanixErr("fake supports sort=name:asc only"))
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > 1000 {
		vendorJSON(w, http.StatusBadRequest, fortanixErr("invalid limit"))
		return
	}
	start := q.Get("start")
	f.mu.Lock()
	var objs []*FortanixObject
	for _, o := range f.keys {
		if o.Name > start || o.Name == start && !f.exclusive {
			objs = append(objs, o)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(objs, func(a, b *FortanixObject) int { return strings.Compare(a.Name, b.Name) })
	out := []map[string]any{}
	for _, o := range objs[:min(limit, len(objs))] {
		out = append(out, map[string]any{"kid": o.Kid, "name": o.Name, "obj_type": o.ObjType, "enabled": o.Enabled})
	}
	vendorJSON(w, http.StatusOK, out)
}

func vendorUUID() string {
	s := vendorID()
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
