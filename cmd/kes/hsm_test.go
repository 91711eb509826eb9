//go:build cgo

package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore/hsm"
	"github.com/openkes/kes/internal/keystore/hsm/hsmtest"
)

// hsmSetup is a SoftHSM2 token with a wrapping key, a server certificate
// and an admin API key, for configuration files of servers with and
// without the hsm section.
type hsmSetup struct {
	tok   *hsmtest.Token
	dir   string
	admin kes.APIKey
}

func newHSMSetup(t *testing.T) *hsmSetup {
	t.Helper()
	tok := hsmtest.New(t, "kes")
	tok.CreateKey(t, "kes-wrap", false)
	dir := t.TempDir()
	if err := writeDevServerCert(dir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &hsmSetup{tok: tok, dir: dir, admin: admin}
}

// config writes a server config for the fs store keys, with the hsm
// section if withHSM (the PIN from $KES_TEST_HSM_PIN), and returns its path.
func (h *hsmSetup) config(t *testing.T, keys string, withHSM bool) string {
	t.Helper()
	yml := serverConfig(h.dir, h.admin.Identity()) + "log:\n  audit: off\nkeystore:\n  fs:\n    path: " + keys + "\n"
	if withHSM {
		t.Setenv("KES_TEST_HSM_PIN", h.tok.PIN)
		yml += fmt.Sprintf("hsm:\n  module: %s\n  token: %s\n  pin: ${KES_TEST_HSM_PIN}\n  key: kes-wrap\n", h.tok.Module, h.tok.Label)
	}
	f, err := os.CreateTemp(h.dir, "config-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yml); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// serve starts the server of config in-process until the test ends and
// returns a client and the banner lines.
func (h *hsmSetup) serve(t *testing.T, config string) (*kes.Client, []string) {
	t.Helper()
	c, banner, _ := h.serveReload(t, config, nil)
	return c, banner
}

// serveReload is serve with reload as the server's SIGHUP; it also returns
// the server's output lines after the banner.
func (h *hsmSetup) serveReload(t *testing.T, config string, reload <-chan struct{}) (*kes.Client, []string, <-chan string) {
	t.Helper()
	lines, _ := startCmdReload(t, reload, "server", "--config", config)
	banner := bannerLines(t, lines)
	var url string
	for _, l := range banner {
		if m := apiLine.FindStringSubmatch(l); m != nil && url == "" {
			url = m[1]
		}
	}
	c, err := kes.NewClient([]string{url}, kes.WithAPIKey(h.admin), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	return c, banner, lines
}

// TestHSMReload: a reload opens the HSM again while the replaced store
// still uses it (the library is initialized once per process and finalized
// by the last store), and the new store reads the wrapped keys.
func TestHSMReload(t *testing.T) {
	h := newHSMSetup(t)
	keys := filepath.Join(t.TempDir(), "keys")
	reload := make(chan struct{})
	c, _, lines := h.serveReload(t, h.config(t, keys, true), reload)
	ctx := t.Context()
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.GenerateKey(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		reload <- struct{}{}
		waitFor(t, lines, regexp.MustCompile(`^=> Reloading configuration after SIGHUP signal completed\.$`))
		// The new cache is empty: the key is read through the new HSM store.
		plain, err := c.Decrypt(ctx, "k", dek.Ciphertext, nil)
		if err != nil || !bytes.Equal(plain, dek.Plaintext) {
			t.Fatalf("Decrypt after a reload = %x, %v", plain, err)
		}
	}
}

// TestHSMServer: a server with the hsm section prints its HSM line
// (without the PIN), wraps the keys it creates, serves them, reports the
// HSM in /v1/status through the key store state and counts its operations
// in /v1/metrics.
func TestHSMServer(t *testing.T) {
	h := newHSMSetup(t)
	keys := filepath.Join(t.TempDir(), "keys")
	c, banner := h.serve(t, h.config(t, keys, true))
	var hsmLine string
	for _, l := range banner {
		if strings.HasPrefix(l, "HSM ") {
			hsmLine = l
		}
		if strings.Contains(l, h.tok.PIN) {
			t.Errorf("banner line %q holds the PIN", l)
		}
	}
	if want := `HSM        PKCS#11 ` + h.tok.Module + `, token "kes", key "kes-wrap" (AES-256-GCM)`; hsmLine != want {
		t.Errorf("banner HSM line = %q, want %q", hsmLine, want)
	}
	ctx := t.Context()
	if err := c.CreateKey(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	dek, err := c.GenerateKey(ctx, "my-key", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.Decrypt(ctx, "my-key", dek.Ciphertext, []byte("ctx"))
	if err != nil || !bytes.Equal(plain, dek.Plaintext) {
		t.Fatalf("Decrypt = %x, %v", plain, err)
	}
	stored, err := os.ReadFile(filepath.Join(keys, "my-key"))
	if err != nil || !hsm.IsWrapped(stored) {
		t.Fatalf("stored record is not wrapped: %.30q, %v", stored, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.KeyStoreUnreachable || st.KeyStoreLatency == 0 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	ops := h.hsmOps(t, c.Endpoints()[0])
	if ops == "0" {
		t.Error("kes_hsm_operations = 0 after creating and reading a key")
	}
	// The cache keeps the parsed key: generate and decrypt requests for it
	// cost no HSM operation, so the layer adds nothing to their CPU.
	for range 50 {
		dek, err := c.GenerateKey(ctx, "my-key", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decrypt(ctx, "my-key", dek.Ciphertext, nil); err != nil {
			t.Fatal(err)
		}
	}
	if after := h.hsmOps(t, c.Endpoints()[0]); after != ops {
		t.Errorf("kes_hsm_operations went from %s to %s during 50 generate and decrypt requests for a cached key", ops, after)
	}
}

// hsmOps returns the value of kes_hsm_operations, and fails t if
// /v1/metrics lacks it or kes_hsm_errors.
func (h *hsmSetup) hsmOps(t *testing.T, url string) string {
	t.Helper()
	m := h.metricsText(t, url)
	if !regexp.MustCompile(`(?m)^kes_hsm_errors \d+$`).MatchString(m) {
		t.Errorf("/v1/metrics has no kes_hsm_errors")
	}
	ops := regexp.MustCompile(`(?m)^kes_hsm_operations (\d+)$`).FindStringSubmatch(m)
	if ops == nil {
		t.Fatalf("/v1/metrics has no kes_hsm_operations")
	}
	return ops[1]
}

// bannerLines returns the lines a server prints up to "=> Server is up and
// running...".
func bannerLines(t *testing.T, lines <-chan string) []string {
	t.Helper()
	var banner []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the server stopped after %q", banner)
			}
			banner = append(banner, l)
			if strings.HasPrefix(l, "=> Server is up and running") {
				return banner
			}
		case <-timeout:
			t.Fatalf("no banner after %q", banner)
		}
	}
}

// metricsText fetches /v1/metrics in the text format as the admin.
func (h *hsmSetup) metricsText(t *testing.T, url string) string {
	t.Helper()
	cert, err := kes.GenerateCertificate(h.admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHSMMigrate: kes migrate re-wraps the keys of an unwrapped fs store,
// into a new directory and in place (both configs with the hsm section,
// -f), and the keys still decrypt the ciphertexts made before.
func TestHSMMigrate(t *testing.T) {
	h := newHSMSetup(t)
	plainDir := filepath.Join(t.TempDir(), "keys")
	plainConfig := h.config(t, plainDir, false)
	names := []string{"k1", "k2", "k3"}
	deks := make(map[string]*kes.GenerateKeyResponse)
	t.Run("before", func(t *testing.T) { // the server stops when it ends
		c, banner := h.serve(t, plainConfig)
		for _, l := range banner {
			if strings.HasPrefix(l, "HSM ") {
				t.Errorf("server without the hsm section prints %q", l)
			}
		}
		for _, name := range names {
			if err := c.CreateKey(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			dek, err := c.GenerateKey(t.Context(), name, nil)
			if err != nil {
				t.Fatal(err)
			}
			deks[name] = dek
		}
	})
	before := readKeys(t, plainDir)

	check := func(t *testing.T, dir string) {
		t.Helper()
		for name, rec := range readKeys(t, dir) {
			if !hsm.IsWrapped([]byte(rec)) || strings.Contains(rec, before[name]) {
				t.Errorf("key %s is not wrapped after the migration: %.30q", name, rec)
			}
		}
		c, _ := h.serve(t, h.config(t, dir, true))
		for _, name := range names {
			plain, err := c.Decrypt(t.Context(), name, deks[name].Ciphertext, nil)
			if err != nil || !bytes.Equal(plain, deks[name].Plaintext) {
				t.Errorf("Decrypt with %s after the migration = %x, %v", name, plain, err)
			}
		}
	}

	t.Run("new directory", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "keys")
		stdout, stderr, code := cliRun(t, nil, false, "migrate", "--from", plainConfig, "--to", h.config(t, dst, true))
		if code != 0 {
			t.Fatalf("kes migrate: exit %d: %s%s", code, stdout, stderr)
		}
		check(t, dst)
		if got := readKeys(t, plainDir); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Error("the migration changed the source")
		}
	})
	t.Run("in place", func(t *testing.T) {
		stdout, stderr, code := cliRun(t, nil, false, "migrate", "-f", "--from", h.config(t, plainDir, true), "--to", h.config(t, plainDir, true))
		if code != 0 || !strings.Contains(stdout, "Migrated      3 keys successfully!") {
			t.Fatalf("kes migrate -f: exit %d: %s%s", code, stdout, stderr)
		}
		check(t, plainDir)
	})
}

// TestHSMWithoutHSM: a wrapped store without the HSM marker served
// without the hsm section answers 502 for its keys (the error log says the
// record is wrapped by an HSM: crypto.ErrHSMWrapped) and the server writes
// nothing. A server with the hsm section writes the marker, and a server
// without it refuses a marked store (TestHSMMarker), so the marker is
// removed here: the state of a store that kes migrate wrapped before any
// server with the hsm section ran on it.
func TestHSMWithoutHSM(t *testing.T) {
	h := newHSMSetup(t)
	keys := filepath.Join(t.TempDir(), "keys")
	t.Run("wrap", func(t *testing.T) {
		c, _ := h.serve(t, h.config(t, keys, true))
		if err := c.CreateKey(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Remove(filepath.Join(keys, hsm.MarkerName)); err != nil {
		t.Fatal(err)
	}
	before := readKeys(t, keys)
	c, _ := h.serve(t, h.config(t, keys, false))
	_, err := c.GenerateKey(t.Context(), "k", nil)
	if kerr, ok := err.(*kes.Error); !ok || kerr.Status != http.StatusBadGateway {
		t.Fatalf("GenerateKey of a wrapped key without the HSM = %v, want 502", err)
	}
	if got := readKeys(t, keys); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Error("the server without the HSM changed the store")
	}
}

// TestHSMMarker: a server with the hsm section marks its store with a
// wrapped record that no listing, describe, deleted-key listing or purge
// shows or touches; the same store served without the hsm section refuses
// to start with an error naming the fix, and an unwrapped store without
// the marker starts without it.
func TestHSMMarker(t *testing.T) {
	h := newHSMSetup(t)
	keys := filepath.Join(t.TempDir(), "keys")
	t.Run("with hsm", func(t *testing.T) { // the server stops when it ends
		c, _ := h.serve(t, h.config(t, keys, true))
		ctx := t.Context()
		for _, name := range []string{"k", "gone"} {
			if err := c.CreateKey(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.DeleteKey(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		rec, err := os.ReadFile(filepath.Join(keys, hsm.MarkerName))
		if err != nil || !hsm.IsWrapped(rec) {
			t.Fatalf("the marker: %.20q, %v; want a wrapped record", rec, err)
		}
		var listed []string
		for name, err := range c.ListKeys(ctx, "") {
			if err != nil {
				t.Fatal(err)
			}
			listed = append(listed, name)
		}
		if fmt.Sprint(listed) != "[k]" {
			t.Errorf("ListKeys = %q, want [k]", listed)
		}
		if _, err := c.DescribeKey(ctx, hsm.MarkerName); err == nil {
			t.Errorf("DescribeKey(%q) succeeded", hsm.MarkerName)
		}
		deleted, err := c.ListDeletedKeys(ctx, "")
		if err != nil || len(deleted) != 1 || deleted[0].Name != "gone" {
			t.Errorf("ListDeletedKeys = %+v, %v; want gone", deleted, err)
		}
		if err := c.PurgeKey(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(keys, hsm.MarkerName)); err != nil || !bytes.Equal(got, rec) {
			t.Errorf("the marker after a purge: %.20q, %v; want it unchanged", got, err)
		}
	})
	before := readKeys(t, keys)
	stdout, stderr, code := cliRun(t, nil, false, "server", "--config", h.config(t, keys, false))
	if code == 0 || !strings.Contains(stderr, "the key store holds HSM-wrapped keys: configure the hsm section (docs/hsm.md)") {
		t.Fatalf("server without the hsm section on a marked store: exit %d: %s%s", code, stdout, stderr)
	}
	if got := readKeys(t, keys); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Error("the refused server changed the store")
	}

	plainDir := filepath.Join(t.TempDir(), "keys")
	c, _ := h.serve(t, h.config(t, plainDir, false))
	if err := c.CreateKey(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(plainDir, hsm.MarkerName)); !os.IsNotExist(err) {
		t.Errorf("a server without the hsm section wrote the marker: %v", err)
	}
}
