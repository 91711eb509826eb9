package fake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Host names the Azure fake answers for. Its client dials the fake's
// loopback listener whatever host a URL names, so the SDK sees the real
// vault domain (and keeps its challenge-resource check on) without any
// request leaving the machine.
const (
	AzureVaultHost     = "kes-test.vault.azure.net"
	AzureAuthorityHost = "login.fake-entra.test"

	// AzureIMDSHost is the instance metadata service that issues managed
	// identity tokens (plain HTTP, port 80).
	AzureIMDSHost = "169.254.169.254"

	// AzureAPIVersion is the Key Vault api-version the azsecrets SDK in
	// go.mod sends on every request.
	AzureAPIVersion = "2026-04-01"

	// AzureResource is the resource Key Vault names in its bearer
	// challenge; tokens are requested for AzureResource + "/.default".
	AzureResource = "https://vault.azure.net"

	// AzureMaxValueSize is the largest secret value Key Vault accepts
	// (25 KiB, counted in bytes of the value string).
	AzureMaxValueSize = 25 * 1024

	// azurePageSize is Key Vault's largest listing page (maxresults).
	azurePageSize = 25
)

// AzureRequest is one request the Azure fake received, for field-by-field
// checks.
type AzureRequest struct {
	Time       time.Time
	Host       string // AzureVaultHost or AzureAuthorityHost
	Method     string
	Path       string // unescaped URL path
	APIVersion string // the api-version query parameter
	Query      url.Values
	Auth       string     // the Authorization header, verbatim
	Body       []byte     // the request body, verbatim
	Form       url.Values // the parsed form of a token request
	Status     int        // the status the fake answered
}

// JSON decodes the request body into v (a Key Vault request body).
func (r AzureRequest) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// AzureFault makes the fake fail matching requests the way Key Vault or
// Microsoft Entra does.
type AzureFault struct {
	// Method and Path select requests: Method "" matches any method, and
	// Path matches a URL path that starts with it ("" matches any).
	Method, Path string

	// Times is how many matching requests fail. Zero means one.
	Times int

	// Status is the HTTP status answered (429, 500, 503, ...). With Code
	// it gets a Key Vault error body; RetryAfter sets the Retry-After
	// header in seconds.
	Status     int
	Code       string
	RetryAfter int

	// Hang makes the fake hold the request until the client gives up (its
	// context ends) instead of answering.
	Hang bool

	// Barrier, if > 0, makes the fault a rendezvous instead of a failure:
	// the first Barrier matching requests wait until all of them have
	// arrived and are then served normally. Tests use it to make racing
	// clients interleave.
	Barrier int

	release chan struct{}
}

// Azure is an in-process Azure Key Vault (secrets REST API, api-version
// AzureAPIVersion) and Microsoft Entra token endpoint, served over TLS on
// loopback. Its exported fields may be changed before the first request.
type Azure struct {
	// TenantID, ClientID and ClientSecret are the service principal the
	// token endpoint accepts.
	TenantID, ClientID, ClientSecret string

	// ManagedIdentityClientID is the user-assigned managed identity the
	// instance metadata service issues tokens for.
	ManagedIdentityClientID string

	// TokenLifetime is the expires_in of issued tokens. The fake rejects a
	// token once it is older (by Now), as Key Vault does.
	TokenLifetime time.Duration

	// BeingDeletedFor is how many requests that touch a just-deleted
	// secret see it as "being deleted" (409 ObjectIsBeingDeleted on purge
	// and set) before it becomes a recoverable deleted secret.
	BeingDeletedFor int

	// Now is the fake's clock, for created/updated times, not-before and
	// expiry checks and token expiry. Nil means time.Now.
	Now func() time.Time

	caPool *x509.CertPool
	srv    *http.Server
	ln     net.Listener
	imdsLn net.Listener // plain HTTP, for AzureIMDSHost
	conns  atomic.Int64

	mu       sync.Mutex
	requests []AzureRequest
	faults   []*AzureFault
	secrets  map[string]*azureSecret
	deleted  map[string]*azureDeleted
	tokens   map[string]azureToken
	revoked  bool // all tokens revoked: next use gets a CAE claims challenge
}

type azureToken struct {
	issued time.Time
	scope  string
}

// NewAzure starts an Azure fake that accepts the service principal
// tenant/client/secret. The test's cleanup stops it.
func NewAzure(t testing.TB, tenant, client, secret string) *Azure {
	t.Helper()
	a := &Azure{
		TenantID:        tenant,
		ClientID:        client,
		ClientSecret:    secret,
		TokenLifetime:   time.Hour,
		BeingDeletedFor: 1,
		secrets:         make(map[string]*azureSecret),
		deleted:         make(map[string]*azureDeleted),
		tokens:          make(map[string]azureToken),
	}
	cert, pool := azureCert(t)
	a.caPool = pool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake azure: %v", err)
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler: http.HandlerFunc(a.serve),
		// HTTP/1.1 only, as Key Vault: a response body the client does
		// not close then holds its connection, so Connections counts it.
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				a.conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	a.srv.Protocols = new(http.Protocols)
	a.srv.Protocols.SetHTTP1(true)
	a.imdsLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake azure: %v", err)
	}
	imds := &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		a.srv.ServeTLS(ln, "", "")
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		imds.Serve(a.imdsLn)
	}()
	t.Cleanup(func() {
		a.srv.Close()
		imds.Close()
		<-done
		<-done
	})
	return a
}

// VaultURL is the vault endpoint: "https://" + AzureVaultHost.
func (a *Azure) VaultURL() string { return "https://" + AzureVaultHost }

// AuthorityHost is the Microsoft Entra authority the fake serves, for
// azcore's cloud configuration.
func (a *Azure) AuthorityHost() string { return "https://" + AzureAuthorityHost + "/" }

// Client returns an HTTP client that trusts the fake's CA and connects
// every request, whatever its host, to the fake: plain HTTP (port 80) to
// the instance metadata service, anything else to the TLS listener. Close
// its idle connections when done.
func (a *Azure) Client() *http.Client {
	tlsAddr, imdsAddr := a.ln.Addr().String(), a.imdsLn.Addr().String()
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if _, port, _ := net.SplitHostPort(addr); port == "80" {
				return d.DialContext(ctx, network, imdsAddr)
			}
			return d.DialContext(ctx, network, tlsAddr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: a.caPool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 4,
	}}
}

// Connections returns how many TCP connections the fake has accepted. A
// client that closes every response body reuses its connections.
func (a *Azure) Connections() int64 { return a.conns.Load() }

// Requests returns a copy of every request received so far.
func (a *Azure) Requests() []AzureRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AzureRequest(nil), a.requests...)
}

// VaultRequests returns the requests to the vault (not the token endpoint)
// that carried a token, in order. Challenge-eliciting requests without one
// are left out.
func (a *Azure) VaultRequests() []AzureRequest {
	var out []AzureRequest
	for _, r := range a.Requests() {
		if r.Host == AzureVaultHost && r.Auth != "" {
			out = append(out, r)
		}
	}
	return out
}

// TokenRequests returns the requests to the token endpoint.
func (a *Azure) TokenRequests() []AzureRequest {
	var out []AzureRequest
	for _, r := range a.Requests() {
		if r.Host == AzureAuthorityHost && strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (a *Azure) ResetRequests() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = nil
}

// Fail queues a fault. Faults are tried in the order queued.
func (a *Azure) Fail(f AzureFault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.Barrier > 0 {
		f.Times = f.Barrier
		f.release = make(chan struct{})
	}
	a.faults = append(a.faults, &f)
}

// RevokeTokens makes Key Vault reject every token issued so far with a
// continuous access evaluation challenge (401, error="insufficient_claims"),
// as it does when a session is revoked; the client must get a new token.
func (a *Azure) RevokeTokens() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked = true
	clear(a.tokens)
}

func (a *Azure) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// statusWriter remembers the status of an answer for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (a *Azure) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	rec := AzureRequest{
		Time:       a.now(),
		Host:       host,
		Method:     r.Method,
		Path:       r.URL.Path,
		APIVersion: r.URL.Query().Get("api-version"),
		Query:      r.URL.Query(),
		Auth:       r.Header.Get("Authorization"),
		Body:       body,
	}
	if host == AzureAuthorityHost && r.Method == http.MethodPost {
		rec.Form, _ = url.ParseQuery(string(body))
	}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		rec.Status = sw.status
		a.mu.Lock()
		a.requests = append(a.requests, rec)
		a.mu.Unlock()
	}()
	if f := a.fault(r.Method, r.URL.Path); f != nil && f.release != nil {
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		}
	} else if f != nil {
		if f.Hang {
			<-r.Context().Done()
			return
		}
		if f.RetryAfter > 0 {
			sw.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		azureError(sw, f.Status, f.Code, "injected failure", "")
		return
	}
	switch host {
	case AzureAuthorityHost:
		a.serveEntra(sw, r, rec.Form)
	case AzureVaultHost:
		a.serveVault(sw, r, body)
	case AzureIMDSHost:
		a.serveIMDS(sw, r)
	default:
		http.Error(sw, "unknown host", http.StatusMisdirectedRequest)
	}
}

func (a *Azure) fault(method, path string) *AzureFault {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.faults {
		if (f.Method == "" || f.Method == method) && strings.HasPrefix(path, f.Path) {
			f.Times--
			if f.Times == 0 {
				a.faults = append(a.faults[:i], a.faults[i+1:]...)
				if f.release != nil {
					close(f.release) // the last of the rendezvous
				}
			}
			return f
		}
	}
	return nil
}

// azureError writes a Key Vault error body:
// {"error":{"code":…,"message":…,"innererror":{"code":…}}}.
func azureError(w http.ResponseWriter, status int, code, msg, inner string) {
	type innerErr struct {
		Code string `json:"code"`
	}
	type kvErr struct {
		Code       string    `json:"code"`
		Message    string    `json:"message"`
		InnerError *innerErr `json:"innererror,omitempty"`
	}
	e := kvErr{Code: code, Message: msg}
	if inner != "" {
		e.InnerError = &innerErr{Code: inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// azureCert returns a certificate for the fake's host names, signed by a
// fresh CA, and a pool with that CA.
func azureCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake azure test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: AzureVaultHost},
		DNSNames:     []string{AzureVaultHost, AzureAuthorityHost, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
