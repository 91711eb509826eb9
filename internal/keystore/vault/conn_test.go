package vault_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/vault"
	"github.com/openkes/kes/internal/vaulttest"
)

func TestTLS(t *testing.T) {
	files := vaulttest.NewTLSFiles(t)
	srv := vaulttest.Start(t, &vaulttest.Options{TLS: files, RequireClientCert: true})
	f := newFixture(t, srv, "v1", "", false, nil)
	caDir := t.TempDir() // a CA directory holds only certificates
	ca, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  vault.TLS
		ok   bool
	}{
		{"ca file and client cert", vault.TLS{CAPath: files.CAFile, CertFile: files.ClientCertFile, KeyFile: files.ClientKeyFile}, true},
		{"ca directory and client cert", vault.TLS{CAPath: caDir, CertFile: files.ClientCertFile, KeyFile: files.ClientKeyFile}, true},
		{"no client cert", vault.TLS{CAPath: files.CAFile}, false},
		{"unknown ca", vault.TLS{CertFile: files.ClientCertFile, KeyFile: files.ClientKeyFile}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config(t, srv.TLSURL())
			cfg.TLS = tt.tls
			s, err := vault.Connect(t.Context(), cfg)
			if !tt.ok {
				if err == nil {
					s.Close()
					t.Fatal("Connect succeeded, want a TLS failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer s.Close()
			roundTrip(t, s, strings.ReplaceAll(tt.name, " ", "-"))
			if _, err := s.Status(t.Context()); err != nil {
				t.Fatalf("Status: %v", err)
			}
		})
	}
}

// recordingProxy forwards to Vault and records the X-Vault-Namespace
// header per request path (Vault OSS has no namespaces and ignores it).
type recordingProxy struct {
	mu  sync.Mutex
	got map[string][]string // path -> namespace headers seen
}

func (p *recordingProxy) namespaces(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ns []string
	for path, v := range p.got {
		if strings.HasPrefix(path, prefix) {
			ns = append(ns, v...)
		}
	}
	return ns
}

func startProxy(t *testing.T, target string) (*recordingProxy, string) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{got: map[string][]string{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got[r.URL.Path] = append(p.got[r.URL.Path], r.Header.Get("X-Vault-Namespace"))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func TestNamespaceHeader(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	tests := []struct {
		name, loginNS, wantLogin string
	}{
		{"login in store namespace", "", "tenant-a"},
		{"login in root namespace", "/", ""},
		{"login in own namespace", "auth-ns", "auth-ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, srv, "v2", "", true, nil)
			proxy, endpoint := startProxy(t, srv.URL())
			cfg := f.config(t, endpoint)
			cfg.Namespace = "tenant-a"
			cfg.AppRole.Namespace = tt.loginNS
			s := connect(t, cfg)
			roundTrip(t, s, "k")
			if _, _, err := s.List(t.Context(), "", "", 0); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(t.Context(), "k"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Status(t.Context()); err != nil {
				t.Fatal(err)
			}
			check := func(prefix string, want string) {
				t.Helper()
				got := proxy.namespaces(prefix)
				if len(got) == 0 {
					t.Errorf("no request to %s", prefix)
				}
				for _, ns := range got {
					if ns != want {
						t.Errorf("%s: X-Vault-Namespace %q, want %q", prefix, ns, want)
					}
				}
			}
			check("/v1/"+f.engine()+"/", "tenant-a")
			check("/v1/"+f.transitEngine()+"/", "tenant-a")
			check("/v1/auth/"+f.mount()+"/login", tt.wantLogin)
			check("/v1/sys/health", "")
		})
	}
}

// TestVaultRestart stops Vault under load: Status reports it unreachable
// and operations fail with an unreachable error; after a restart (same
// root token, engines and AppRole re-created, all tokens gone) the store
// logs in again and works.
func TestVaultRestart(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	f := newFixture(t, srv, "v1", "", false, nil)
	s := connect(t, f.config(t, srv.URL()))
	roundTrip(t, s, "before")

	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		ok, fails atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := s.List(t.Context(), "", "", 0); err != nil {
					fails.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	srv.Stop()
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Status with Vault stopped: %v, want unreachable", err)
	}
	_, err := s.Get(t.Context(), "before")
	if !keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get with Vault stopped: %v, want unreachable", err)
	}
	if err := s.Create(t.Context(), "during", []byte("x")); !keystore.IsUnreachable(err) {
		t.Fatalf("Create with Vault stopped: %v, want unreachable", err)
	}

	srv.Restart(t)
	f.apply(t, srv)
	failsAtRestart := fails.Load()
	i := 0
	vaulttest.Eventually(t, 30*time.Second, "store works after restart", func() error {
		i++
		if _, err := s.Status(t.Context()); err != nil {
			return err
		}
		return s.Create(t.Context(), fmt.Sprintf("after-%d", i), []byte("x"))
	})
	roundTrip(t, s, "after")
	if st := s.Stats(); st.Logins < 2 {
		t.Fatalf("stats %+v: want a re-login after restart", st)
	}
	okAfter := ok.Load()
	vaulttest.Eventually(t, 10*time.Second, "load succeeds again", func() error {
		if ok.Load() <= okAfter {
			return errors.New("no successful List since recovery")
		}
		return nil
	})
	t.Logf("restart: %d failed and %d successful operations under load (%d failures while stopped), stats %+v",
		fails.Load(), ok.Load(), failsAtRestart, s.Stats())
}

// TestSealed: while the background check sees Vault sealed every operation
// fails with vault.ErrSealed and Status reports unreachable; after unseal
// the store works again.
func TestSealed(t *testing.T) {
	srv := vaulttest.Start(t, nil)
	f := newFixture(t, srv, "v1", "", false, nil)
	cfg := f.config(t, srv.URL())
	cfg.StatusPing = 100 * time.Millisecond
	s := connect(t, cfg)
	roundTrip(t, s, "before")

	srv.Seal(t)
	if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) || !errors.Is(err, vault.ErrSealed) {
		t.Fatalf("Status of sealed Vault: %v, want unreachable (sealed)", err)
	}
	vaulttest.Eventually(t, 10*time.Second, "operations fail as sealed", func() error {
		_, err := s.Get(t.Context(), "before")
		if !errors.Is(err, vault.ErrSealed) {
			return fmt.Errorf("Get: %v", err)
		}
		return nil
	})
	srv.Unseal(t)
	vaulttest.Eventually(t, 10*time.Second, "store works after unseal", func() error {
		_, err := s.Get(t.Context(), "before")
		return err
	})
}
