package aws_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/keystore/aws"
)

// kumo does not check request signatures, so a wrong secret key is not
// refused there. These tests check instead, at a proxy in front of kumo,
// which credentials each request is signed with.

var credentialRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$`)

// signer returns the access key, region and service a request was signed
// for, and its session token header.
func signer(t *testing.T, r proxyRequest) (key, region, service, token string) {
	t.Helper()
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		t.Fatalf("%s: Authorization %q is not SigV4", r.Op, r.Header.Get("Authorization"))
	}
	return m[1], m[2], m[3], r.Header.Get("X-Amz-Security-Token")
}

// isolateEnv clears the AWS environment of the test and turns off the EC2
// metadata service, so the default chain never leaves loopback.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
}

func TestStaticCredentials(t *testing.T) {
	isolateEnv(t)
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	c := testConfig(p.URL())
	c.AccessKey, c.SecretKey, c.SessionToken = "AKIASTATIC0000000001", "static-secret-key-never-sent", "static-session-token"
	s := connect(t, c)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	reqs := p.requests("CreateSecret")
	if len(reqs) != 1 {
		t.Fatalf("%d CreateSecret requests", len(reqs))
	}
	key, region, service, token := signer(t, reqs[0])
	if key != c.AccessKey || region != awstest.Region || service != "secretsmanager" || token != c.SessionToken {
		t.Fatalf("signed with key %q region %q service %q token %q", key, region, service, token)
	}
	for _, r := range p.requests("") {
		for k, v := range r.Header {
			if strings.Contains(strings.Join(v, " "), c.SecretKey) {
				t.Fatalf("header %s carries the secret key", k)
			}
		}
		if strings.Contains(string(r.Body), c.SecretKey) {
			t.Fatal("a request body carries the secret key")
		}
	}
	if strings.Contains(fmt.Sprint(c), c.SecretKey) || strings.Contains(fmt.Sprint(c), c.SessionToken) || strings.Contains(s.String(), c.SecretKey) {
		t.Fatal("Config.String prints a credential")
	}
}

// TestDefaultChain checks the SDK's default chain without static
// credentials: the environment, then the shared credentials file; the
// shared config file is not read, as upstream.
func TestDefaultChain(t *testing.T) {
	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	noStatic := func() *aws.Config {
		c := testConfig(p.URL())
		c.AccessKey, c.SecretKey = "", ""
		return c
	}
	signedWith := func(t *testing.T, s *aws.Store) string {
		t.Helper()
		p.reset()
		if _, _, err := s.List(t.Context(), "", "", 0); err != nil {
			t.Fatal(err)
		}
		key, _, _, _ := signer(t, p.requests("ListSecrets")[0])
		return key
	}

	t.Run("environment", func(t *testing.T) {
		isolateEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
		if key := signedWith(t, connect(t, noStatic())); key != "AKIAFROMENVIRONMENT1" {
			t.Fatalf("signed with %q, want the environment's key", key)
		}
	})
	t.Run("credentials-file", func(t *testing.T) {
		isolateEnv(t)
		f := filepath.Join(t.TempDir(), "credentials")
		os.WriteFile(f, []byte("[default]\naws_access_key_id = AKIAFROMCREDSFILE001\naws_secret_access_key = file-secret\n"), 0o600)
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", f)
		if key := signedWith(t, connect(t, noStatic())); key != "AKIAFROMCREDSFILE001" {
			t.Fatalf("signed with %q, want the credentials file's key", key)
		}
	})
	t.Run("config-file-ignored", func(t *testing.T) {
		isolateEnv(t)
		f := filepath.Join(t.TempDir(), "config")
		os.WriteFile(f, []byte("[default]\naws_access_key_id = AKIAFROMCONFIGFILE01\naws_secret_access_key = config-secret\n"), 0o600)
		t.Setenv("AWS_CONFIG_FILE", f)
		s := connect(t, noStatic())
		p.reset()
		if err := s.Create(t.Context(), "k", []byte("v")); err == nil {
			t.Fatal("Create succeeded with credentials only in the shared config file")
		}
		for _, r := range p.requests("CreateSecret") {
			if key, _, _, _ := signer(t, r); key == "AKIAFROMCONFIGFILE01" {
				t.Fatal("request signed with the shared config file's key")
			}
		}
	})
}

// TestReauth checks that short-lived role credentials (the ECS container
// endpoint of the default chain, played by a loopback server) are fetched
// again once they near their expiry, and every request is signed with
// credentials the endpoint issued.
func TestReauth(t *testing.T) {
	isolateEnv(t)
	var (
		mu     sync.Mutex
		issued = map[string]bool{}
	)
	creds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		key := fmt.Sprintf("ASIAROLE%012d", len(issued)+1)
		issued[key] = true
		mu.Unlock()
		// One minute is inside the SDK's refresh window for container
		// credentials (5 minutes): each use finds them about to expire.
		json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": key, "SecretAccessKey": "role-secret", "Token": "role-token-" + key,
			"Expiration": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
		})
	}))
	t.Cleanup(creds.Close)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.URL+"/role")

	kumo := awstest.StartKumo(t)
	p := newProxy(t, kumo.URL())
	c := testConfig(p.URL())
	c.AccessKey, c.SecretKey = "", ""
	s := connect(t, c)
	for i := range 3 {
		if err := s.Create(t.Context(), fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, r := range p.requests("CreateSecret") {
		key, _, _, token := signer(t, r)
		mu.Lock()
		ok := issued[key]
		mu.Unlock()
		if !ok || token != "role-token-"+key {
			t.Fatalf("request signed with key %q token %q, not issued by the role endpoint", key, token)
		}
		seen[key] = true
	}
	if len(seen) < 2 {
		t.Fatalf("3 calls used %d credential sets; expiring credentials were not renewed", len(seen))
	}
}
