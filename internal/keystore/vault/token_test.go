package vault_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

// roundTrip creates and reads back a fresh key and fails t on any error.
func roundTrip(t *testing.T, s *vault.Store, name string) {
	t.Helper()
	if err := s.Create(t.Context(), name, []byte("value-"+name)); err != nil {
		t.Fatalf("Create(%s): %v (stats %+v)", name, err, s.Stats())
	}
	if v, err := s.Get(t.Context(), name); err != nil || string(v) != "value-"+name {
		t.Fatalf("Get(%s) = %q, %v (stats %+v)", name, v, err, s.Stats())
	}
}

// TestAppRoleTokenLifecycle uses tokens with a 3s TTL and a 6s max TTL:
// the store must renew them and log in again while operations keep
// succeeding, and never log a secret.
func TestAppRoleTokenLifecycle(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	var logs syncBuffer
	cfg := setup(t, srv, "v2", "", false, map[string]any{"token_ttl": "3s", "token_max_ttl": "6s"})
	cfg.Logger = testLogger(t, &logs)
	cfg.MinTokenTTL = -1 // renew although the TTL is below 30s
	s := connect(t, cfg)

	i := 0
	vaulttest.Eventually(t, 45*time.Second, "3 renewals and 2 re-logins", func() error {
		i++
		roundTrip(t, s, fmt.Sprintf("k-%d", i))
		if st := s.Stats(); st.Renewals < 3 || st.Logins < 3 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	st := s.Stats()
	t.Logf("approle: %d renewals, %d re-logins, %d operations", st.Renewals, st.Logins-1, 2*i)
	if st.LoginFailures != 0 || st.RenewalFailures != 0 {
		t.Errorf("stats %+v: want no failed login or renewal", st)
	}
	out := logs.String()
	if !strings.Contains(out, "vault: token renewed") || !strings.Contains(out, "vault: logged in") {
		t.Errorf("log has no renewal/login events:\n%s", out)
	}
	for _, secret := range []string{cfg.AppRole.Secret, "hvs."} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret (%q)", secret)
		}
	}
}

// tokenReviewer is a stand-in for the Kubernetes TokenReview API that
// Vault's kubernetes auth method calls.
type tokenReviewer struct {
	mu    sync.Mutex
	valid map[string]bool
	seen  []string
}

func (r *tokenReviewer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.NotFound(w, req)
		return
	}
	var review struct {
		Spec struct {
			Token string `json:"token"`
		} `json:"spec"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	ok := r.valid[review.Spec.Token]
	r.seen = append(r.seen, review.Spec.Token)
	r.mu.Unlock()
	status := map[string]any{"authenticated": ok}
	if ok {
		status["user"] = map[string]any{"username": "system:serviceaccount:kes:kes-sa", "uid": "sa-uid-1"}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status,
	})
}

func (r *tokenReviewer) setValid(tokens ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.valid = map[string]bool{}
	for _, tok := range tokens {
		r.valid[tok] = true
	}
}

func (r *tokenReviewer) saw(tok string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.seen, tok)
}

// serviceAccountJWT returns an ES256-signed service account token. Vault
// does not verify the signature without pem_keys; the reviewer decides.
func serviceAccountJWT(t *testing.T, key *ecdsa.PrivateKey, id string) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:kes:kes-sa",
		"jti":                                    id,
		"kubernetes.io/serviceaccount/namespace": "kes",
		"kubernetes.io/serviceaccount/service-account.name": "kes-sa",
		"kubernetes.io/serviceaccount/service-account.uid":  "sa-uid-1",
	})
	signed := header + "." + enc.EncodeToString(claims)
	h := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig)
}

// TestKubernetesAuth logs in with a JWT from a file through Vault's
// kubernetes auth method; the file is rewritten and the old JWT revoked,
// and the next login must use the new one.
func TestKubernetesAuth(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	reviewer := &tokenReviewer{}
	k8s := httptest.NewTLSServer(reviewer)
	t.Cleanup(k8s.Close)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwt1, jwt2 := serviceAccountJWT(t, key, "one"), serviceAccountJWT(t, key, "two")
	reviewer.setValid(jwt1)
	jwtFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwtFile, []byte(jwt1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	f := newFixture(t, srv, "v1", "", false, nil)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k8s.Certificate().Raw})
	srv.Do(t, func(c *api.Client) error {
		if err := c.Sys().EnableAuthWithOptions("k8s", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			return err
		}
		if _, err := c.Logical().Write("auth/k8s/config", map[string]any{
			"kubernetes_host": k8s.URL, "kubernetes_ca_cert": string(caPEM),
			"disable_local_ca_jwt": true, "disable_iss_validation": true,
		}); err != nil {
			return err
		}
		// Tokens live 2s and cannot be renewed past that: re-login.
		_, err := c.Logical().Write("auth/k8s/role/kes", map[string]any{
			"bound_service_account_names": "kes-sa", "bound_service_account_namespaces": "kes",
			"token_policies": f.policy(), "token_ttl": "2s", "token_max_ttl": "2s",
		})
		return err
	})
	cfg := f.config(t, srv.URL())
	cfg.AppRole = nil
	cfg.Kubernetes = &vault.Kubernetes{Engine: "k8s", Role: "kes", JWT: jwtFile}
	s := connect(t, cfg)
	roundTrip(t, s, "first")
	if !reviewer.saw(jwt1) {
		t.Fatal("Vault did not review the JWT from the file")
	}

	// Rotate: the old JWT is no longer valid, the file holds the new one.
	if err := os.WriteFile(jwtFile, []byte(jwt2), 0o600); err != nil {
		t.Fatal(err)
	}
	reviewer.setValid(jwt2)
	i := 0
	vaulttest.Eventually(t, 30*time.Second, "login with the rewritten JWT", func() error {
		i++
		roundTrip(t, s, fmt.Sprintf("k-%d", i))
		if !reviewer.saw(jwt2) || s.Stats().Logins < 3 {
			return fmt.Errorf("stats %+v, new JWT seen: %v", s.Stats(), reviewer.saw(jwt2))
		}
		return nil
	})
	st := s.Stats()
	t.Logf("kubernetes: %d renewals, %d re-logins", st.Renewals, st.Logins-1)
	if st.LoginFailures != 0 {
		t.Errorf("stats %+v: a login used a stale JWT", st)
	}
}
