package azure

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
)

// warm makes one request so that the store knows Key Vault's challenge and
// holds a token; later faults then hit authorized requests.
func warm(t *testing.T, f *fake.Azure, s *Store) {
	t.Helper()
	if _, err := s.Get(t.Context(), "warm-up"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("warm-up Get: %v", err)
	}
	f.ResetRequests()
}

// only keeps the vault requests with the given method and path.
func only(reqs []fake.AzureRequest, method, path string) []fake.AzureRequest {
	return slices.DeleteFunc(reqs, func(r fake.AzureRequest) bool { return r.Method != method || r.Path != path })
}

func statuses(reqs []fake.AzureRequest) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, r.Status)
	}
	return out
}

// TestRequests checks the calls of create, get, delete and list field by
// field, and the client-secret flow that authorizes them.
func TestRequests(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	ctx := t.Context()
	if err := s.Create(ctx, "my-key", []byte("record")); err != nil {
		t.Fatal(err)
	}
	all := f.Requests()
	if r := all[0]; r.Host != fake.AzureVaultHost || r.Auth != "" || r.Status != http.StatusUnauthorized {
		t.Errorf("first request = %+v; want one without token, answered by the bearer challenge", r)
	}
	tokens := f.TokenRequests()
	if len(tokens) != 1 {
		t.Fatalf("token requests = %d, want 1", len(tokens))
	}
	form := tokens[0].Form
	if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != testClient ||
		form.Get("client_secret") != testSecret || !slices.Contains(strings.Fields(form.Get("scope")), fake.AzureResource+"/.default") ||
		tokens[0].Path != "/"+testTenant+"/oauth2/v2.0/token" || tokens[0].Status != http.StatusOK {
		t.Errorf("token request = %s %s %v", tokens[0].Method, tokens[0].Path, form)
	}
	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "my-key"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	want := []string{
		"GET /secrets/my-key/ 404",          // create: the latest version
		"PUT /secrets/my-key 200",           // SetSecret
		"GET /secrets/my-key/versions 200",  // create: is ours the oldest?
		"DELETE /secrets/my-key 200",        // DeleteSecret
		"DELETE /deletedsecrets/my-key 409", // purge while being deleted
		"DELETE /deletedsecrets/my-key 204", // PurgeDeletedSecret
		"GET /secrets 200",                  // list
		"GET /secrets/my-key/versions 200",  // get: no versions
	}
	reqs := f.VaultRequests()
	if got := calls(reqs); !slices.Equal(got, want) {
		t.Fatalf("vault requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range reqs {
		if r.APIVersion != fake.AzureAPIVersion || r.Auth == "" || r.Auth != reqs[0].Auth {
			t.Errorf("%s %s: api-version %q, auth %q", r.Method, r.Path, r.APIVersion, r.Auth)
		}
		if r.Method != http.MethodPut && len(r.Body) != 0 {
			t.Errorf("%s %s: unexpected body %q", r.Method, r.Path, r.Body)
		}
	}
}

func TestThrottled(t *testing.T) {
	f, c := newFake(t)
	s := connectBackoff(t, c)
	f.PutVersion("k", fake.AzureVersion{Value: "v"})
	warm(t, f, s)
	f.Fail(fake.AzureFault{Method: "GET", Path: "/secrets/k/versions", Status: http.StatusTooManyRequests, Code: "Throttled", RetryAfter: 1})
	got, err := s.Get(t.Context(), "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v; want success after the throttled try", got, err)
	}
	list := only(f.VaultRequests(), "GET", "/secrets/k/versions")
	if !slices.Equal(statuses(list), []int{429, 200}) {
		t.Fatalf("list statuses = %v, want [429 200]", statuses(list))
	}
	if wait := list[1].Time.Sub(list[0].Time); wait < time.Second {
		t.Fatalf("retried after %v; want at least Retry-After (1s)", wait)
	}
}

func TestServerErrorRetried(t *testing.T) {
	f, c := newFake(t)
	s := connectBackoff(t, c)
	warm(t, f, s)
	f.Fail(fake.AzureFault{Method: "PUT", Path: "/secrets/k", Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Times: 2})
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if put := only(f.VaultRequests(), "PUT", "/secrets/k"); !slices.Equal(statuses(put), []int{503, 503, 200}) {
		t.Fatalf("PUT statuses = %v, want [503 503 200]", statuses(put))
	}
	if v := f.Versions("k"); len(v) != 1 {
		t.Fatalf("versions = %d, want 1", len(v))
	}
}

func TestServerErrorNotRetried(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	warm(t, f, s)
	f.Fail(fake.AzureFault{Path: "/secrets/k", Status: http.StatusNotImplemented, Code: "NotImplemented"})
	_, err := s.Get(t.Context(), "k")
	var ve *VaultError
	if !keystore.IsUnreachable(err) || !errors.As(err, &ve) || ve.StatusCode != http.StatusNotImplemented || errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get = %v; want an unreachable error wrapping the 501", err)
	}
	if n := len(f.VaultRequests()); n != 1 {
		t.Fatalf("requests = %d, want 1 (501 is not retried)", n)
	}
}

// TestErrorHoldsNoValue: a refused SetSecret names the status and codes,
// never the value sent.
func TestErrorHoldsNoValue(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	warm(t, f, s)
	f.Fail(fake.AzureFault{Method: "PUT", Path: "/secrets/k", Status: http.StatusBadRequest, Code: "BadParameter"})
	const value = "c2VjcmV0IGtleSByZWNvcmQgdGhhdCBtdXN0IG5vdCBsZWFr"
	err := s.Create(t.Context(), "k", []byte(value))
	var ve *VaultError
	if !errors.As(err, &ve) || ve.StatusCode != http.StatusBadRequest || ve.Code != "BadParameter" {
		t.Fatalf("Create = %v; want the 400 BadParameter", err)
	}
	if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error holds a secret: %v", err)
	}
}

// TestDeadline: a vault that answers slower than the context's deadline,
// or keeps failing with 5xx, makes the call return at the deadline.
func TestDeadline(t *testing.T) {
	for _, fault := range []fake.AzureFault{
		{Path: "/secrets/k", Hang: true},
		{Path: "/secrets/k", Status: http.StatusInternalServerError, Code: "InternalServerError", Times: 1000},
	} {
		f, c := newFake(t)
		s := connectBackoff(t, c)
		warm(t, f, s)
		f.Fail(fault)
		const deadline = 700 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		start := time.Now()
		_, err := s.Get(ctx, "k")
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("hang=%v: Get = %v; want context.DeadlineExceeded", fault.Hang, err)
		}
		// Without the deadline, the hang lasts forever and the 5xx retries
		// about 30s; 2s of slack keeps a loaded machine from failing it.
		if elapsed < deadline || elapsed > deadline+2*time.Second {
			t.Errorf("hang=%v: Get returned after %v; want at the %v deadline", fault.Hang, elapsed, deadline)
		}
	}
}

// TestTokenExpiry: once a token expires the store gets a new one, and Key
// Vault (which refuses expired tokens) keeps answering. Tokens here live 2
// seconds. (Entra's last for an hour or more; the SDK starts replacing one
// 5 minutes before it expires, at most every 30 seconds, and at once when
// it has expired.)
func TestTokenExpiry(t *testing.T) {
	f, c := newFake(t)
	f.TokenLifetime = 2 * time.Second
	s := connect(t, c)
	ctx := t.Context()
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(15 * time.Second)
	for len(f.TokenRequests()) < 2 {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatal("no new token within 15s")
		}
		if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
			t.Fatalf("Get = %q, %v", got, err)
		}
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	reqs := f.VaultRequests()
	if first, last := reqs[0].Auth, reqs[len(reqs)-1].Auth; first == last {
		t.Errorf("the last request still used the first token")
	}
	tokens := f.TokenRequests()
	if gap := tokens[1].Time.Sub(tokens[0].Time); gap < f.TokenLifetime {
		t.Errorf("new token after %v; want once the first expired (%v)", gap, f.TokenLifetime)
	}
}

// TestTokenRevoked: Key Vault refuses a revoked token with a continuous
// access evaluation challenge; the store gets a new token (with the
// challenge's claims) and the call succeeds.
func TestTokenRevoked(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	f.PutVersion("k", fake.AzureVersion{Value: "v"})
	warm(t, f, s)
	f.RevokeTokens()
	if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after revocation = %q, %v", got, err)
	}
	tokens := f.TokenRequests()
	if len(tokens) != 1 || !strings.Contains(tokens[0].Form.Get("claims"), `"nbf"`) {
		t.Fatalf("token requests after revocation = %d (%v); want one with the challenge's claims", len(tokens), tokens)
	}
	reqs := f.VaultRequests()
	if reqs[0].Status != http.StatusUnauthorized || reqs[1].Status != http.StatusOK || reqs[0].Auth == reqs[1].Auth {
		t.Fatalf("requests = %v; want the old token refused, then the new one accepted", calls(reqs))
	}
}

func TestBadClientSecret(t *testing.T) {
	f, c := newFake(t)
	c.Credentials.ClientSecret = "wrong-" + testSecret
	s := connect(t, c)
	err := s.Create(t.Context(), "k", []byte("v"))
	if err == nil || keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrExists) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("Create with a wrong client secret = %v", err)
	}
	checkNoSecret(t, err)
	if strings.Contains(err.Error(), "wrong-") {
		t.Fatalf("error contains the configured secret: %v", err)
	}
	if n := len(f.VaultRequests()); n != 0 {
		t.Fatalf("%d vault requests carried a token", n)
	}
}

func TestSoftDeletedOnCreate(t *testing.T) {
	tests := []struct {
		beingDeleted int
		want         []string
	}{
		{0, []string{
			"GET /secrets/k/ 404", "PUT /secrets/k 409", "DELETE /deletedsecrets/k 204",
			"PUT /secrets/k 200", "GET /secrets/k/versions 200"}},
		{2, []string{
			"GET /secrets/k/ 404", "PUT /secrets/k 409", "DELETE /deletedsecrets/k 409", "DELETE /deletedsecrets/k 204",
			"PUT /secrets/k 200", "GET /secrets/k/versions 200"}},
	}
	for _, tt := range tests {
		f, c := newFake(t)
		s := connect(t, c)
		warm(t, f, s)
		f.BeingDeletedFor = tt.beingDeleted
		f.PutVersion("k", fake.AzureVersion{Value: "old"})
		f.SoftDelete("k")
		if err := s.Create(t.Context(), "k", []byte("new")); err != nil {
			t.Fatalf("Create over a soft-deleted name: %v", err)
		}
		if got := calls(f.VaultRequests()); !slices.Equal(got, tt.want) {
			t.Errorf("being deleted for %d: requests\n%s\nwant\n%s", tt.beingDeleted, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
		if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "new" || f.SoftDeleted("k") {
			t.Fatalf("Get = %q, %v", got, err)
		}
	}
}

func TestDeleteWaitsWhileBeingDeleted(t *testing.T) {
	f, c := newFake(t)
	s := connectBackoff(t, c)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.BeingDeletedFor = 3
	f.ResetRequests()
	start := time.Now()
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	elapsed := time.Since(start)
	purges := only(f.VaultRequests(), "DELETE", "/deletedsecrets/k")
	if !slices.Equal(statuses(purges), []int{409, 409, 409, 204}) || f.SoftDeleted("k") {
		t.Fatalf("purge statuses = %v; want three 409 then 204", statuses(purges))
	}
	// Backoff 200, 400, 800 ms, each -20%.
	if elapsed < 1120*time.Millisecond {
		t.Fatalf("Delete took %v; want the purge backoff (>= 1.12s)", elapsed)
	}

	// Never done: the bounded tries end with an error.
	f.BeingDeletedFor = 1000
	s = connect(t, c)
	if err := s.Create(t.Context(), "k2", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.ResetRequests()
	err := s.Delete(t.Context(), "k2")
	if err == nil || keystore.IsUnreachable(err) {
		t.Fatalf("Delete while never purgeable = %v", err)
	}
	if n := len(only(f.VaultRequests(), "DELETE", "/deletedsecrets/k2")); n != deletePurgeTries {
		t.Fatalf("purge tries = %d, want %d", n, deletePurgeTries)
	}
}

func TestNotFoundAndExists(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	ctx := t.Context()
	f.PutVersion("deleted", fake.AzureVersion{Value: "v"})
	f.SoftDelete("deleted")
	for _, name := range []string{"missing", "deleted"} {
		_, err := s.Get(ctx, name)
		if !errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) {
			t.Errorf("Get(%s) = %v; want keystore.ErrNotFound", name, err)
		}
	}
	// A disabled latest version still takes the name.
	f.PutVersion("disabled", fake.AzureVersion{Value: "v", Disabled: true})
	if err := s.Create(ctx, "disabled", []byte("x")); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("Create over a disabled secret = %v; want keystore.ErrExists", err)
	}
}

// TestBodiesClosed: every answer body is read and closed, so sequential
// calls reuse one connection to the vault and one to Entra (HTTP/1.1).
func TestBodiesClosed(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	ctx := t.Context()
	for i := range 20 {
		name := "k" + itoa(i)
		if err := s.Create(ctx, name, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatal(err)
		}
		if err := s.Create(ctx, name, []byte("v")); !errors.Is(err, keystore.ErrExists) {
			t.Fatal(err)
		}
		if _, err := s.Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.List(ctx, "", "", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.Delete(ctx, "k"+itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Connections(); n > 3 {
		t.Fatalf("%d connections for %d requests; an answer body was left open", n, len(f.Requests()))
	}
}

func TestListPages(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	var want []string
	for i := range 60 {
		name := "key-" + itoa(100+i)
		want = append(want, name)
		f.PutVersion(name, fake.AzureVersion{Value: "v"})
	}
	f.ResetRequests()
	names, next, err := s.List(t.Context(), "key-", "", 0)
	if err != nil || next != "" || !slices.Equal(names, want) {
		t.Fatalf("List = %d names, %q, %v; want all 60", len(names), next, err)
	}
	pages := only(f.VaultRequests(), "GET", "/secrets")
	if len(pages) != 3 || pages[1].Query.Get("$skiptoken") != "25" || pages[2].Query.Get("$skiptoken") != "50" {
		t.Fatalf("listing requests = %v", calls(pages))
	}
}

func TestStatus(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	if st, err := s.Status(t.Context()); err != nil || st.Latency <= 0 {
		t.Fatalf("Status = %v, %v", st, err)
	}
	// The probe is a plain GET of the endpoint, without a token.
	r := f.Requests()
	if last := r[len(r)-1]; last.Method != "GET" || last.Path != "/" || last.Auth != "" {
		t.Fatalf("probe = %+v", last)
	}

	// Nothing listening: unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var d net.Dialer
	down := *c
	down.Transport = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}}
	s = connect(t, &down)
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status of a closed port = %v; want unreachable", err)
	}
	f.Fail(fake.AzureFault{Path: "/", Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"})
	if _, err := connect(t, c).Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status of a 503 = %v; want unreachable", err)
	}
}

// TestManagedIdentity: a user-assigned managed identity gets its token
// from the instance metadata service, for the vault's resource.
func TestManagedIdentity(t *testing.T) {
	f, c := newFake(t)
	// The SDK caches managed identity tokens for the whole process: a
	// fresh identity per run keeps a token of an earlier fake (-count=2)
	// from being sent to this one.
	f.ManagedIdentityClientID = "9c8d7e6f-" + time.Now().Format("150405.000000000")
	c.Credentials = Credentials{}
	c.ManagedIdentityClientID = f.ManagedIdentityClientID
	s := connect(t, c)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	var imds []fake.AzureRequest
	for _, r := range f.Requests() {
		if r.Host == fake.AzureIMDSHost {
			imds = append(imds, r)
		}
	}
	if len(imds) != 1 || imds[0].Path != "/metadata/identity/oauth2/token" || imds[0].Status != http.StatusOK ||
		imds[0].Query.Get("client_id") != f.ManagedIdentityClientID || imds[0].Query.Get("resource") != fake.AzureResource {
		t.Fatalf("IMDS requests = %+v", imds)
	}
	if n := len(f.TokenRequests()); n != 0 {
		t.Fatalf("%d requests to Entra; want none", n)
	}

	// Another identity is refused: an error, not unreachable.
	c.ManagedIdentityClientID = "00000000-0000-4000-8000-000000000002"
	err := connect(t, c).Create(t.Context(), "k2", []byte("v"))
	if err == nil || keystore.IsUnreachable(err) {
		t.Fatalf("Create with an unknown identity = %v", err)
	}
}

// TestDefaultCredential: without credentials or managed identity, Azure's
// default chain is used; its first link reads AZURE_TENANT_ID,
// AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
func TestDefaultCredential(t *testing.T) {
	f, c := newFake(t)
	c.Credentials = Credentials{}
	t.Setenv("AZURE_TENANT_ID", testTenant)
	t.Setenv("AZURE_CLIENT_ID", testClient)
	t.Setenv("AZURE_CLIENT_SECRET", testSecret)
	s := connect(t, c)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	tokens := f.TokenRequests()
	if len(tokens) != 1 || tokens[0].Form.Get("client_id") != testClient || tokens[0].Status != http.StatusOK {
		t.Fatalf("token requests = %+v", tokens)
	}
}
