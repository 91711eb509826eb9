package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// envVaultBin names the Vault server binary when -vault-bin is not given,
// as for the repository's tests.
const envVaultBin = "OPENKES_VAULT_BIN"

// errNoVaultBin says how to get a Vault server binary.
var errNoVaultBin = errors.New("kesload: -store vault needs a Vault server binary: -vault-bin PATH or " + envVaultBin +
	"\nhint: scripts/install-vault.sh builds Vault 1.14.0 once, caches it and prints its path")

// vaultServer is a Vault dev server (in-memory storage, plain HTTP on
// 127.0.0.1) that kesload started for one measurement, with a root client.
type vaultServer struct {
	addr    string // host:port
	version string // of "vault version"
	proc    *child
	root    *api.Client
}

// url returns http://addr.
func (v *vaultServer) url() string { return "http://" + v.addr }

// startVault starts a Vault dev server from bin with a random root token
// and waits until it is unsealed. Its stderr goes to dir/vault.stderr;
// stop stops it.
func startVault(ctx context.Context, bin, dir string) (_ *vaultServer, err error) {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("kesload: %s version: %w", bin, err)
	}
	v := &vaultServer{version: strings.TrimSpace(string(out))}
	if v.addr, err = freeAddrPair(); err != nil {
		return nil, err
	}
	token := randomHex(16)
	// Dev mode: in-memory storage, unsealed, a root token, a listener on
	// addr and its cluster listener on the next port.
	args := []string{"server", "-dev", "-dev-root-token-id=" + token, "-dev-listen-address=" + v.addr,
		"-dev-no-store-token", "-log-level=warn"}
	if v.proc, err = startChild("vault", bin, args, nil, nil, dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			v.stop()
		}
	}()
	health := &http.Client{Timeout: 2 * time.Second}
	if err := v.proc.waitReady(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url()+"/v1/sys/health", nil)
		if err != nil {
			return err
		}
		resp, err := health.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("vault health: status %d", resp.StatusCode)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if v.root, _, err = v.client(1); err != nil {
		return nil, err
	}
	v.root.SetToken(token)
	return v, nil
}

// stop kills the server (its storage is in memory) and waits for it.
func (v *vaultServer) stop() { v.proc.Stop() }

// client returns a client of v without a token that keeps up to conns
// connections open and never retries, and its HTTP client.
func (v *vaultServer) client(conns int) (*api.Client, *http.Client, error) {
	conf := api.DefaultConfig()
	if conf.Error != nil {
		return nil, nil, conf.Error
	}
	conf.Address = v.url()
	conf.MaxRetries = 0
	if t, ok := conf.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = conns
	}
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, nil, err
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, conf.HttpClient, nil
}

// vaultCreds are the AppRole credentials of the kes servers and of the
// Vault API client: a role whose tokens may use the K/V mounts set up.
type vaultCreds struct {
	roleID, secretID string
}

// setup mounts a K/V engine of version kv ("v1" or "v2") at each of
// mounts and makes an AppRole (auth mount "approle", role "kesload") whose
// tokens have the capabilities KES needs on them (spec config.md §9.2)
// and live for an hour.
func (v *vaultServer) setup(ctx context.Context, kv string, mounts []string) (vaultCreds, error) {
	var policy strings.Builder
	for _, m := range mounts {
		if err := v.root.Sys().MountWithContext(ctx, m, &api.MountInput{Type: "kv", Options: map[string]string{"version": strings.TrimPrefix(kv, "v")}}); err != nil {
			return vaultCreds{}, fmt.Errorf("kesload: vault: mount %s: %w", m, err)
		}
		if kv == "v1" {
			fmt.Fprintf(&policy, "path %q { capabilities = [\"create\", \"read\", \"delete\", \"list\"] }\n", m+"/*")
			continue
		}
		fmt.Fprintf(&policy, "path %q { capabilities = [\"create\", \"read\"] }\n", m+"/data/*")
		fmt.Fprintf(&policy, "path %q { capabilities = [\"list\", \"delete\"] }\n", m+"/metadata/*")
		if err := v.waitKV2(ctx, m); err != nil {
			return vaultCreds{}, err
		}
	}
	if err := v.root.Sys().PutPolicyWithContext(ctx, "kesload", policy.String()); err != nil {
		return vaultCreds{}, fmt.Errorf("kesload: vault: policy: %w", err)
	}
	if err := v.root.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return vaultCreds{}, fmt.Errorf("kesload: vault: enable approle: %w", err)
	}
	creds := vaultCreds{roleID: "kesload-" + randomHex(8), secretID: randomHex(16)}
	const role = "auth/approle/role/kesload"
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{role, map[string]any{"token_policies": "kesload", "token_ttl": "1h", "token_max_ttl": "2h"}},
		{role + "/role-id", map[string]any{"role_id": creds.roleID}},
		{role + "/custom-secret-id", map[string]any{"secret_id": creds.secretID}},
	} {
		if _, err := v.root.Logical().WriteWithContext(ctx, w.path, w.data); err != nil {
			return vaultCreds{}, fmt.Errorf("kesload: vault: approle %s: %w", w.path, err)
		}
	}
	return creds, nil
}

// waitKV2 waits until the K/V v2 mount m, which upgrades in the
// background after it is mounted, answers a listing.
func (v *vaultServer) waitKV2(ctx context.Context, m string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := v.root.Logical().ListWithContext(ctx, m+"/metadata")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kesload: vault: K/V v2 mount %s not ready: %w", m, err)
		case <-tick.C:
		}
	}
}

// login returns a client with a token of the AppRole creds that keeps up
// to conns connections open, and its HTTP client.
func (v *vaultServer) login(ctx context.Context, creds vaultCreds, conns int) (*api.Client, *http.Client, error) {
	c, hc, err := v.client(conns)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": creds.roleID, "secret_id": creds.secretID})
	if err != nil {
		return nil, nil, fmt.Errorf("kesload: vault: approle login: %w", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, nil, errors.New("kesload: vault: approle login returned no token")
	}
	c.SetToken(s.Auth.ClientToken)
	return c, hc, nil
}

// pairsSetup prepares v for a pairs measurement of o: a K/V mount per kes
// server ("kes-0", ...) and one for the Vault API client ("vault-api"),
// and an AppRole for all. It returns the keystore section of each kes
// server and the Vault API client as a pairs server, logged in.
func (v *vaultServer) pairsSetup(ctx context.Context, o PairsOptions) ([]string, *pairsServer, error) {
	mounts := []string{"vault-api"}
	for i := range o.KES {
		mounts = append(mounts, "kes-"+strconv.Itoa(i))
	}
	creds, err := v.setup(ctx, o.VaultKV, mounts)
	if err != nil {
		return nil, nil, err
	}
	stores := make([]string, len(o.KES))
	for i := range o.KES {
		stores[i] = vaultKeyStore(v, mounts[i+1], o.VaultKV, creds)
	}
	c, hc, err := v.login(ctx, creds, o.Clients)
	if err != nil {
		return nil, nil, err
	}
	pair := vaultPairs(c, mounts[0], o.VaultKV)
	return stores, &pairsServer{name: "vault-api", binary: "Vault Go API client", workers: o.Clients, vault: v,
		pair:  func(ctx context.Context, _ int, name string) error { return pair(ctx, name) },
		close: hc.CloseIdleConnections}, nil
}

// vaultKeyStore returns the keystore section of a kes server on the K/V
// mount of v (lines below "keystore:").
func vaultKeyStore(v *vaultServer, mount, kv string, creds vaultCreds) string {
	return fmt.Sprintf("  vault:\n    endpoint: %s\n    engine: %s\n    version: %s\n    approle:\n      id: %s\n      secret: %s\n",
		v.url(), mount, kv, creds.roleID, creds.secretID)
}

// vaultPairs returns the pair function of the Vault API client: write a
// new secret shaped as KES stores a key (a data field named after the key
// holding a base64 string of about a key record's size; on K/V v2 with
// check-and-set 0, so that only a new secret is written, as KES's create
// needs) and delete it (on v2 its metadata, every version). This is the
// least any KES must ask of Vault per pair; KES itself also reads before it
// writes, and a soft delete copies the key first.
func vaultPairs(c *api.Client, mount, kv string) func(ctx context.Context, name string) error {
	value := make([]byte, 128)
	rand.Read(value)
	stored := base64.StdEncoding.EncodeToString(value)
	return func(ctx context.Context, name string) error {
		if kv == "v1" {
			if _, err := c.Logical().WriteWithContext(ctx, mount+"/"+name, map[string]any{name: stored}); err != nil {
				return fmt.Errorf("vault write %s: %w", name, err)
			}
			if _, err := c.Logical().DeleteWithContext(ctx, mount+"/"+name); err != nil {
				return fmt.Errorf("vault delete %s: %w", name, err)
			}
			return nil
		}
		data := map[string]any{"options": map[string]any{"cas": 0}, "data": map[string]any{name: stored}}
		if _, err := c.Logical().WriteWithContext(ctx, mount+"/data/"+name, data); err != nil {
			return fmt.Errorf("vault write %s: %w", name, err)
		}
		if _, err := c.Logical().DeleteWithContext(ctx, mount+"/metadata/"+name); err != nil {
			return fmt.Errorf("vault delete %s: %w", name, err)
		}
		return nil
	}
}

// freeAddrPair returns a loopback address whose port and the next one
// (the dev server's cluster listener) were free a moment ago.
func freeAddrPair() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return l.Addr().String(), nil
		}
	}
	return "", errors.New("kesload: no free pair of loopback ports for vault")
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
