package fake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The scope and audience a self-signed JWT for Secret Manager carries.
const (
	gcpCloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
	gcpAudience           = "https://secretmanager.googleapis.com/"
)

// GCPServiceAccount is a service account key the fake accepts: the four
// values of the credentials section of a KES config file.
type GCPServiceAccount struct {
	ClientEmail  string
	ClientID     string
	PrivateKeyID string
	PrivateKey   string // PEM, PKCS #8, as Google issues them
}

// gcpAuth checks the bearer tokens of RPCs: self-signed JWTs of known
// service accounts, and access tokens issued by the metadata server.
type gcpAuth struct {
	mu       sync.Mutex
	keys     map[string]gcpKey // by key ID
	tokens   map[string]bool   // issued access token → still valid
	issued   []string
	lifetime int // expires_in of issued tokens, seconds
}

type gcpKey struct {
	email string
	pub   *rsa.PublicKey
}

func (a *gcpAuth) init() {
	a.keys = make(map[string]gcpKey)
	a.tokens = make(map[string]bool)
	a.lifetime = 3600
}

// ServiceAccount creates a service account key (RSA 2048) that the fake
// accepts from now on.
func (g *GCP) ServiceAccount(t testing.TB, name string) GCPServiceAccount {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	g.auth.mu.Lock()
	defer g.auth.mu.Unlock()
	id := fmt.Sprintf("%040x", len(g.auth.keys)+1)
	sa := GCPServiceAccount{
		ClientEmail:  name + "@" + g.Project + ".iam.gserviceaccount.com",
		ClientID:     fmt.Sprintf("1%020d", len(g.auth.keys)+1),
		PrivateKeyID: id,
		PrivateKey:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	g.auth.keys[id] = gcpKey{email: sa.ClientEmail, pub: &key.PublicKey}
	return sa
}

// SetTokenLifetime sets the expires_in (seconds) of the access tokens the
// metadata server issues from now on. A negative lifetime makes them
// expired when the client receives them (the client refuses zero).
func (g *GCP) SetTokenLifetime(seconds int) {
	g.auth.mu.Lock()
	defer g.auth.mu.Unlock()
	g.auth.lifetime = seconds
}

// ExpireTokens makes every access token issued so far invalid: RPCs that
// carry one fail with UNAUTHENTICATED.
func (g *GCP) ExpireTokens() {
	g.auth.mu.Lock()
	defer g.auth.mu.Unlock()
	for tok := range g.auth.tokens {
		g.auth.tokens[tok] = false
	}
}

// IssuedTokens returns the access tokens the metadata server issued, oldest
// first.
func (g *GCP) IssuedTokens() []string {
	g.auth.mu.Lock()
	defer g.auth.mu.Unlock()
	return slices.Clone(g.auth.issued)
}

// MetadataHost is the host:port of the fake GCE metadata server, the value
// for GCE_METADATA_HOST: Application Default Credentials then take access
// tokens from it.
func (g *GCP) MetadataHost() string { return g.meta.host }

func (a *gcpAuth) issue() (string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tok := fmt.Sprintf("ya29.fake-%d-%s", len(a.issued)+1, base64.RawURLEncoding.EncodeToString(randBytes(12)))
	a.tokens[tok] = true
	a.issued = append(a.issued, tok)
	return tok, a.lifetime
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// check verifies a bearer token as Google's front end does for the cases
// the fake knows, with Google's codes: UNAUTHENTICATED for a missing,
// invalid or expired credential, PERMISSION_DENIED for a JWT without a
// scope that covers Secret Manager.
func (a *gcpAuth) check(token string) error {
	unauthenticated := status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
	if token == "" {
		return unauthenticated
	}
	a.mu.Lock()
	valid, issued := a.tokens[token]
	a.mu.Unlock()
	if issued {
		if !valid {
			return unauthenticated
		}
		return nil
	}
	claims, err := a.verifyJWT(token)
	if err != nil {
		return unauthenticated
	}
	if claims.Aud != gcpAudience && !slices.Contains(strings.Fields(claims.Scope), gcpCloudPlatformScope) {
		return status.Error(codes.PermissionDenied, "Request had insufficient authentication scopes.")
	}
	return nil
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Scope string `json:"scope"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// verifyJWT checks a self-signed service-account JWT: RS256 by a known key
// (kid), issuer and subject the key's account, valid now, at most one hour.
func (a *gcpAuth) verifyJWT(token string) (*jwtClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims jwtClaims
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, err
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, err
	}
	a.mu.Lock()
	key, ok := a.keys[header.Kid]
	a.mu.Unlock()
	if !ok || header.Alg != "RS256" {
		return nil, fmt.Errorf("unknown key")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	if claims.Iss != key.email || claims.Sub != key.email || claims.Exp <= now || claims.Iat > now+60 || claims.Exp-claims.Iat > 3600 {
		return nil, fmt.Errorf("invalid claims")
	}
	return &claims, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// gcpMetadata is the part of the GCE metadata server that Application
// Default Credentials use: the default service account's access token.
type gcpMetadata struct {
	host string
}

func startGCPMetadata(t testing.TB, a *gcpAuth) *gcpMetadata {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Metadata-Flavor", "Google")
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor header", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			tok, lifetime := a.issue()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": lifetime, "token_type": "Bearer"})
		case "/computeMetadata/v1/universe/universe-domain":
			io.WriteString(w, "googleapis.com")
		case "/computeMetadata/v1/instance/service-accounts/default/email":
			io.WriteString(w, "default@kes-project.iam.gserviceaccount.com")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return &gcpMetadata{host: strings.TrimPrefix(srv.URL, "http://")}
}
