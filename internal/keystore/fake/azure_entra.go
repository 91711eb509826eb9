package fake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// serveEntra is the Microsoft Entra side: the tenant's OpenID metadata and
// its v2.0 token endpoint for the client-credentials grant.
func (a *Azure) serveEntra(w http.ResponseWriter, r *http.Request, form url.Values) {
	authority := "https://" + AzureAuthorityHost + "/" + a.TenantID
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/"+a.TenantID+"/v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                authority + "/v2.0",
			"authorization_endpoint":                authority + "/oauth2/v2.0/authorize",
			"token_endpoint":                        authority + "/oauth2/v2.0/token",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"jwks_uri":                              authority + "/discovery/v2.0/keys",
			"response_modes_supported":              []string{"query", "fragment", "form_post"},
			"tenant_region_scope":                   "EU",
		})
	case r.Method == http.MethodPost && r.URL.Path == "/"+a.TenantID+"/oauth2/v2.0/token":
		a.issueToken(w, form)
	default:
		entraError(w, http.StatusBadRequest, "invalid_tenant", 90002, "Tenant not found.")
	}
}

func (a *Azure) issueToken(w http.ResponseWriter, form url.Values) {
	switch {
	case form.Get("grant_type") != "client_credentials":
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
		return
	case subtle.ConstantTimeCompare([]byte(form.Get("client_id")), []byte(a.ClientID)) != 1:
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, "Application was not found in the directory.")
		return
	case subtle.ConstantTimeCompare([]byte(form.Get("client_secret")), []byte(a.ClientSecret)) != 1:
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided.")
		return
	case !slices.Contains(strings.Fields(form.Get("scope")), AzureResource+"/.default"):
		entraError(w, http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid.")
		return
	}
	var b [24]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	a.mu.Lock()
	a.tokens[tok] = azureToken{issued: a.now(), scope: form.Get("scope")}
	a.revoked = false
	a.mu.Unlock()
	secs := int(a.TokenLifetime / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

func entraError(w http.ResponseWriter, status int, code string, n int, desc string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s", n, desc),
		"error_codes":       []int{n},
	})
}

// authorized checks the bearer token of a vault request. If it fails, it
// has written Key Vault's 401 challenge.
func (a *Azure) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	t, known := a.tokens[tok]
	revoked := a.revoked
	a.mu.Unlock()
	if ok && known && a.now().Before(t.issued.Add(a.TokenLifetime)) {
		return true
	}
	challenge := fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, a.TenantID, AzureResource)
	if ok && revoked {
		// A revoked session: continuous access evaluation asks for a
		// new token carrying these claims.
		claims := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"nbf":{"essential":true,"value":"` +
			fmt.Sprint(a.now().Unix()) + `"}}}`))
		challenge = fmt.Sprintf(`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="%s"`, claims)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	azureError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", "")
	return false
}

// serveIMDS is the instance metadata service's managed identity token
// endpoint (GET /metadata/identity/oauth2/token, header Metadata: true).
func (a *Azure) serveIMDS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/metadata/identity/oauth2/token":
		http.Error(w, "not found", http.StatusNotFound)
		return
	case r.Header.Get("Metadata") != "true":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required metadata header not specified"})
		return
	case q.Get("api-version") == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"})
		return
	case q.Get("resource") != AzureResource:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found."})
		return
	case a.ManagedIdentityClientID == "" || q.Get("client_id") != a.ManagedIdentityClientID:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	var b [24]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := a.now()
	a.mu.Lock()
	a.tokens[tok] = azureToken{issued: now, scope: AzureResource}
	a.revoked = false
	a.mu.Unlock()
	secs := int(a.TokenLifetime / time.Second)
	// IMDS answers numbers as strings.
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"client_id":      a.ManagedIdentityClientID,
		"expires_in":     fmt.Sprint(secs),
		"expires_on":     fmt.Sprint(now.Add(a.TokenLifetime).Unix()),
		"ext_expires_in": fmt.Sprint(secs),
		"not_before":     fmt.Sprint(now.Unix()),
		"resource":       AzureResource,
		"token_type":     "Bearer",
	})
}
