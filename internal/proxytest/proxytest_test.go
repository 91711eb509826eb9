package proxytest_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/proxytest"
)

// seen is what the echo server saw of a request.
type seen struct {
	Cert       string // the forwarded-certificate header
	Forwarded  string // X-Forwarded-For
	PeerCN     string // the common name of the connection's client certificate
	RemoteAddr string
}

// startEcho starts an mTLS server that answers with what it saw.
func startEcho(t *testing.T, ca *proxytest.CA) string {
	t.Helper()
	srvCert := ca.Issue(t, "echo", proxytest.ServerAuth)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := seen{Cert: r.Header.Get(proxytest.DefaultHeader), Forwarded: r.Header.Get("X-Forwarded-For"), RemoteAddr: r.RemoteAddr}
			if len(r.TLS.PeerCertificates) > 0 {
				s.PeerCN = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			json.NewEncoder(w).Encode(s)
		}),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{srvCert.TLS},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool,
			MinVersion:   tls.VersionTLS12,
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestProxies checks the peers themselves: each forwards the client's
// certificate in its usual form and X-Forwarded-For, and connects with
// its own client certificate.
func TestProxies(t *testing.T) {
	ca := proxytest.NewCA(t)
	upstream := startEcho(t, ca)
	client := ca.Issue(t, "client", proxytest.ClientAuth)
	for _, tc := range []struct {
		name   string
		start  func(testing.TB, proxytest.Config) *proxytest.Proxy
		decode func(string) ([]byte, error)
	}{
		{"nginx", proxytest.Nginx, func(v string) ([]byte, error) {
			pemText, err := url.PathUnescape(v)
			if err != nil {
				return nil, err
			}
			return []byte(pemText), nil
		}},
		{"haproxy", proxytest.HAProxy, func(v string) ([]byte, error) {
			der, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, err
			}
			return der, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.start(t, proxytest.Config{
				Upstream:   upstream,
				UpstreamCA: ca.File,
				Server:     ca.Issue(t, tc.name+"-front", proxytest.ServerAuth),
				Client:     ca.Issue(t, tc.name+"-proxy", proxytest.ClientAuth),
				ClientCA:   ca.File,
			})
			tr := &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{client.TLS}, ServerName: "localhost"},
				DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
			}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+p.Addr+"/v1/status", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("request through %s: %v\n%s", tc.name, err, p.Logs())
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatalf("%s answered %d %q: %v\n%s", tc.name, resp.StatusCode, body, err, p.Logs())
			}
			if s.PeerCN != tc.name+"-proxy" {
				t.Errorf("upstream connection's certificate: %q, want the proxy's", s.PeerCN)
			}
			if s.Forwarded != "127.0.0.2" {
				t.Errorf("X-Forwarded-For = %q, want 127.0.0.2", s.Forwarded)
			}
			got, err := tc.decode(s.Cert)
			if err != nil {
				t.Fatalf("header %q: %v", s.Cert, err)
			}
			want := client.TLS.Certificate[0]
			if tc.name == "nginx" {
				want = client.PEM
			}
			if strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
				t.Errorf("forwarded certificate %q, want the client's", s.Cert)
			}
		})
	}
}
