package fake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// azureVersion is one version of a secret.
type azureVersion struct {
	ID          string // 32 hex digits
	Value       string
	ContentType string
	Enabled     bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     time.Time
	Updated     time.Time
}

type azureSecret struct {
	versions []*azureVersion // in the order set
}

type azureDeleted struct {
	secret       *azureSecret
	deleted      time.Time
	beingDeleted int // requests left that see the deletion in progress
}

// AzureVersion describes a secret version for [Azure.PutVersion]: a secret
// as another Key Vault client (upstream KES, the portal) left it.
type AzureVersion struct {
	Value       string
	ContentType string
	Disabled    bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     time.Time // zero means Now
}

// PutVersion adds a version to the named secret, as SetSecret by another
// client would, and returns its version ID.
func (a *Azure) PutVersion(name string, v AzureVersion) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v.Created.IsZero() {
		v.Created = a.now()
	}
	return a.addVersion(name, &azureVersion{
		Value: v.Value, ContentType: v.ContentType, Enabled: !v.Disabled,
		NotBefore: v.NotBefore, Expires: v.Expires,
		Created: v.Created.Truncate(time.Second), Updated: v.Created.Truncate(time.Second),
	})
}

// Versions returns the versions of the named live secret, in the order
// they were set: (value, content type) pairs.
func (a *Azure) Versions(name string) []AzureVersion {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.secrets[name]
	if s == nil {
		return nil
	}
	var out []AzureVersion
	for _, v := range s.versions {
		out = append(out, AzureVersion{Value: v.Value, ContentType: v.ContentType, Disabled: !v.Enabled,
			NotBefore: v.NotBefore, Expires: v.Expires, Created: v.Created})
	}
	return out
}

// SoftDeleted reports whether name is a deleted (recoverable) secret.
func (a *Azure) SoftDeleted(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.deleted[name]
	return ok
}

// SoftDelete deletes the named secret without purging it, as a user with
// the portal would, leaving it recoverable. BeingDeletedFor applies.
func (a *Azure) SoftDelete(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.secrets[name]; s != nil {
		delete(a.secrets, name)
		a.deleted[name] = &azureDeleted{secret: s, deleted: a.now(), beingDeleted: a.BeingDeletedFor}
	}
}

func (a *Azure) addVersion(name string, v *azureVersion) string {
	var b [16]byte
	rand.Read(b[:])
	v.ID = hex.EncodeToString(b[:])
	s := a.secrets[name]
	if s == nil {
		s = new(azureSecret)
		a.secrets[name] = s
	}
	s.versions = append(s.versions, v)
	return v.ID
}

var azureNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// serveVault is the Key Vault secrets REST API.
func (a *Azure) serveVault(w http.ResponseWriter, r *http.Request, body []byte) {
	if !a.authorized(w, r) {
		return
	}
	if v := r.URL.Query().Get("api-version"); v != AzureAPIVersion {
		azureError(w, http.StatusBadRequest, "BadParameter", "The specified version ("+v+") is not recognized.", "")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	name := ""
	if len(parts) > 1 {
		name = parts[1]
		if !azureNameRE.MatchString(name) {
			azureError(w, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid name: "+name, "")
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "secrets":
		a.listSecrets(w, r)
	case r.Method == http.MethodPut && len(parts) == 2 && parts[0] == "secrets":
		a.setSecret(w, name, body)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "secrets" && parts[2] == "versions":
		a.listVersions(w, r, name)
	case r.Method == http.MethodGet && (len(parts) == 2 || len(parts) == 3) && parts[0] == "secrets":
		version := ""
		if len(parts) == 3 {
			version = parts[2]
		}
		a.getSecret(w, name, version)
	case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "secrets":
		a.deleteSecret(w, name)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "deletedsecrets":
		a.getDeleted(w, name)
	case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "deletedsecrets":
		a.purge(w, name)
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "deletedsecrets" && parts[2] == "recover":
		a.recoverSecret(w, name)
	default:
		azureError(w, http.StatusNotFound, "NotFound", "The requested resource was not found.", "")
	}
}

// deletedState answers for a soft-deleted name: it counts down a deletion
// in progress. It reports whether name is deleted and whether it is still
// being deleted.
func (a *Azure) deletedState(name string) (deleted, being bool) {
	d := a.deleted[name]
	if d == nil {
		return false, false
	}
	if d.beingDeleted > 0 {
		d.beingDeleted--
		return true, true
	}
	return true, false
}

func (a *Azure) setSecret(w http.ResponseWriter, name string, body []byte) {
	var req struct {
		Value       *string `json:"value"`
		ContentType string  `json:"contentType"`
		Attributes  *struct {
			Enabled *bool  `json:"enabled"`
			NBF     *int64 `json:"nbf"`
			Exp     *int64 `json:"exp"`
		} `json:"attributes"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Value == nil {
		azureError(w, http.StatusBadRequest, "BadParameter", "Property value is required.", "")
		return
	}
	if len(*req.Value) > AzureMaxValueSize {
		azureError(w, http.StatusBadRequest, "BadParameter", "Secret value exceeds the maximum size.", "")
		return
	}
	if deleted, being := a.deletedState(name); being {
		azureError(w, http.StatusConflict, "Conflict", "Secret "+name+" is currently being deleted.", "ObjectIsBeingDeleted")
		return
	} else if deleted {
		azureError(w, http.StatusConflict, "Conflict", "Secret "+name+" is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can be recovered or purged.", "ObjectIsDeletedButRecoverable")
		return
	}
	now := a.now().Truncate(time.Second)
	v := &azureVersion{Value: *req.Value, ContentType: req.ContentType, Enabled: true, Created: now, Updated: now}
	if at := req.Attributes; at != nil {
		if at.Enabled != nil {
			v.Enabled = *at.Enabled
		}
		if at.NBF != nil {
			t := time.Unix(*at.NBF, 0)
			v.NotBefore = &t
		}
		if at.Exp != nil {
			t := time.Unix(*at.Exp, 0)
			v.Expires = &t
		}
	}
	a.addVersion(name, v)
	writeJSON(w, http.StatusOK, a.bundle(name, v, true))
}

func (a *Azure) getSecret(w http.ResponseWriter, name, version string) {
	s := a.secrets[name]
	var v *azureVersion
	if s != nil {
		if version == "" {
			v = s.versions[len(s.versions)-1]
		} else if i := slices.IndexFunc(s.versions, func(v *azureVersion) bool { return v.ID == version }); i >= 0 {
			v = s.versions[i]
		}
	}
	if v == nil {
		azureError(w, http.StatusNotFound, "SecretNotFound", "A secret with (name/id) "+name+"/"+version+" was not found in this key vault.", "")
		return
	}
	if !v.Enabled {
		azureError(w, http.StatusForbidden, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
		return
	}
	writeJSON(w, http.StatusOK, a.bundle(name, v, true))
}

func (a *Azure) listVersions(w http.ResponseWriter, r *http.Request, name string) {
	var items []map[string]any
	if s := a.secrets[name]; s != nil {
		for _, v := range s.versions {
			items = append(items, a.bundle(name, v, false))
		}
	}
	a.page(w, r, items, "/secrets/"+name+"/versions")
}

func (a *Azure) listSecrets(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(a.secrets))
	for name := range a.secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	items := make([]map[string]any, 0, len(names))
	for _, name := range names {
		s := a.secrets[name]
		item := a.bundle(name, s.versions[len(s.versions)-1], false)
		item["id"] = a.VaultURL() + "/secrets/" + name // no version in a secret listing
		items = append(items, item)
	}
	a.page(w, r, items, "/secrets")
}

// page answers a listing with up to maxresults (at most 25) items from
// $skiptoken on, and a nextLink while more remain.
func (a *Azure) page(w http.ResponseWriter, r *http.Request, items []map[string]any, path string) {
	q := r.URL.Query()
	size := azurePageSize
	if n, err := strconv.Atoi(q.Get("maxresults")); err == nil && n > 0 && n < size {
		size = n
	}
	start, _ := strconv.Atoi(q.Get("$skiptoken"))
	start = min(max(start, 0), len(items))
	end := min(start+size, len(items))
	resp := map[string]any{"value": items[start:end], "nextLink": nil}
	if end < len(items) {
		next := url.Values{"api-version": {AzureAPIVersion}, "$skiptoken": {strconv.Itoa(end)}, "maxresults": {strconv.Itoa(size)}}
		resp["nextLink"] = a.VaultURL() + path + "?" + next.Encode()
	}
	if items == nil {
		resp["value"] = []any{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *Azure) deleteSecret(w http.ResponseWriter, name string) {
	s := a.secrets[name]
	if s == nil {
		azureError(w, http.StatusNotFound, "SecretNotFound", "A secret with (name/id) "+name+" was not found in this key vault.", "")
		return
	}
	delete(a.secrets, name)
	d := &azureDeleted{secret: s, deleted: a.now(), beingDeleted: a.BeingDeletedFor}
	a.deleted[name] = d
	writeJSON(w, http.StatusOK, a.deletedBundle(name, d))
}

func (a *Azure) getDeleted(w http.ResponseWriter, name string) {
	deleted, being := a.deletedState(name)
	if !deleted || being {
		azureError(w, http.StatusNotFound, "SecretNotFound", "Deleted Secret not found: "+name, "")
		return
	}
	writeJSON(w, http.StatusOK, a.deletedBundle(name, a.deleted[name]))
}

func (a *Azure) purge(w http.ResponseWriter, name string) {
	deleted, being := a.deletedState(name)
	switch {
	case being:
		azureError(w, http.StatusConflict, "Conflict", "Secret "+name+" is currently being deleted.", "ObjectIsBeingDeleted")
	case !deleted:
		azureError(w, http.StatusNotFound, "SecretNotFound", "Deleted Secret not found: "+name, "")
	default:
		delete(a.deleted, name)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *Azure) recoverSecret(w http.ResponseWriter, name string) {
	deleted, being := a.deletedState(name)
	switch {
	case being:
		azureError(w, http.StatusConflict, "Conflict", "Secret "+name+" is currently being deleted.", "ObjectIsBeingDeleted")
	case !deleted:
		azureError(w, http.StatusNotFound, "SecretNotFound", "Deleted Secret not found: "+name, "")
	case a.secrets[name] != nil:
		azureError(w, http.StatusConflict, "Conflict", "Secret "+name+" already exists.", "")
	default:
		s := a.deleted[name].secret
		delete(a.deleted, name)
		a.secrets[name] = s
		writeJSON(w, http.StatusOK, a.bundle(name, s.versions[len(s.versions)-1], false))
	}
}

// bundle is a SecretBundle (with value) or SecretItem (without).
func (a *Azure) bundle(name string, v *azureVersion, withValue bool) map[string]any {
	attrs := map[string]any{
		"enabled":         v.Enabled,
		"created":         v.Created.Unix(),
		"updated":         v.Updated.Unix(),
		"recoveryLevel":   "Recoverable+Purgeable",
		"recoverableDays": 90,
	}
	if v.NotBefore != nil {
		attrs["nbf"] = v.NotBefore.Unix()
	}
	if v.Expires != nil {
		attrs["exp"] = v.Expires.Unix()
	}
	b := map[string]any{"id": a.VaultURL() + "/secrets/" + name + "/" + v.ID, "attributes": attrs, "tags": map[string]string{}}
	if v.ContentType != "" {
		b["contentType"] = v.ContentType
	}
	if withValue {
		b["value"] = v.Value
	}
	return b
}

func (a *Azure) deletedBundle(name string, d *azureDeleted) map[string]any {
	b := a.bundle(name, d.secret.versions[len(d.secret.versions)-1], false)
	b["recoveryId"] = a.VaultURL() + "/deletedsecrets/" + name
	b["deletedDate"] = d.deleted.Unix()
	b["scheduledPurgeDate"] = d.deleted.Add(90 * 24 * time.Hour).Unix()
	return b
}
