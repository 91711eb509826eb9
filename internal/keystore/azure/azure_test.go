package azure

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

func TestConformance(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		_, c := newFake(t)
		return connect(t, c)
	}, storetest.Options{
		DeleteMissingOK: true, // as upstream
		// Key Vault holds 25 KiB per value; a value that is not UTF-8 is
		// stored base64 (4/3 larger).
		MaxValueSize: 18 << 10,
	})
}

// TestConformanceBackoff runs the suite with the real purge backoff and a
// vault that reports every deletion in progress for two requests, as Key
// Vault does for a while after DeleteSecret.
func TestConformanceBackoff(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		f, c := newFake(t)
		f.BeingDeletedFor = 2
		return connectBackoff(t, c)
	}, storetest.Options{DeleteMissingOK: true, MaxValueSize: 18 << 10, Concurrency: 4})
}

// TestConcurrentCreateTwoStores races creates of one name from two stores
// (two KES processes): Key Vault has no create-if-absent, so both see no
// secret and both set one. Each then checks that its version is the oldest,
// the one every reader serves: exactly one create succeeds.
func TestConcurrentCreateTwoStores(t *testing.T) {
	f, c := newFake(t)
	// Key Vault's creation times have one-second resolution: a clock that
	// ticks a second per reading makes the two versions' times differ.
	// (Within one second the two creates cannot be ordered; see
	// olderVersion.)
	var mu sync.Mutex
	clock := time.Now()
	f.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	stores := []*Store{connect(t, c), connect(t, fakeConfig(t, f))}
	for _, s := range stores {
		if _, err := s.Get(t.Context(), "warm-up"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatal(err)
		}
	}
	// Both creates read "no such secret" before either sets one. The
	// rendezvous makes that interleaving likely, not certain (the HTTP
	// client may interleave differently under load), so a run in which one
	// create saw the other's secret is checked too and then tried again
	// under a new name, until the race has happened once.
	for attempt := range 5 {
		name := fmt.Sprintf("contended-%d", attempt)
		f.Fail(fake.AzureFault{Method: "GET", Path: "/secrets/" + name + "/", Barrier: 2})
		errs := make([]error, 2)
		done := make(chan int)
		for i, s := range stores {
			go func() {
				errs[i] = s.Create(t.Context(), name, []byte{'v', byte('a' + i)})
				done <- i
			}()
		}
		<-done
		<-done
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: creates %d and %d both succeeded", name, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, keystore.ErrExists):
				t.Fatalf("%s: create %d: %v", name, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no create succeeded", name)
		}
		for _, s := range stores {
			got, err := s.Get(t.Context(), name)
			if err != nil || !bytes.Equal(got, []byte{'v', byte('a' + winner)}) {
				t.Fatalf("%s: Get = %q, %v; want the winner's value %q", name, got, err, []byte{'v', byte('a' + winner)})
			}
		}
		if n := len(f.Versions(name)); n == 2 {
			return // both set a version, and exactly one won
		}
		t.Logf("%s: the creates did not interleave (errors %v); trying again", name, errs)
	}
	t.Fatal("the two creates never both set a version in 5 attempts")
}

// TestUpstreamFormat reads the upstream vector records stored as upstream
// KES stores them (secret <name>, value = record, no content type) and
// checks that Create writes exactly that.
func TestUpstreamFormat(t *testing.T) {
	dir := vectors.Path(t, "keystore")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, c := newFake(t)
	s := connect(t, c)
	for _, e := range entries {
		name := e.Name()
		record, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			// Read: written by upstream.
			f.PutVersion(name, fake.AzureVersion{Value: string(record)})
			got, err := s.Get(t.Context(), name)
			if err != nil || !bytes.Equal(got, record) {
				t.Fatalf("Get(%s) = %q, %v; want the upstream record byte for byte", name, got, err)
			}
			if err := s.Create(t.Context(), name, []byte("x")); !errors.Is(err, keystore.ErrExists) {
				t.Fatalf("Create over upstream key: %v, want keystore.ErrExists", err)
			}
			// Write: read back as upstream would (latest version, value as is).
			if err := s.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
			f.ResetRequests()
			if err := s.Create(t.Context(), name, record); err != nil {
				t.Fatal(err)
			}
			v := f.Versions(name)
			if len(v) != 1 || v[0].Value != string(record) || v[0].ContentType != "" || v[0].Disabled ||
				v[0].NotBefore != nil || v[0].Expires != nil {
				t.Fatalf("stored versions = %+v; want one plain version holding the record", v)
			}
			var put []fake.AzureRequest
			for _, r := range f.VaultRequests() {
				if r.Method == "PUT" {
					put = append(put, r)
				}
			}
			if len(put) != 1 {
				t.Fatalf("PUT requests = %v, want one", calls(put))
			}
			var body map[string]any
			if err := put[0].JSON(&body); err != nil {
				t.Fatal(err)
			}
			if len(body) != 1 || body["value"] != string(record) {
				t.Fatalf("SetSecret body = %s; want exactly {\"value\": record}", put[0].Body)
			}
		})
	}
}

// TestOldestVersion: the key is the oldest version by creation time, as
// upstream reads it, whatever the order the versions were set in.
func TestOldestVersion(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	t0 := time.Now().Add(-time.Hour)
	f.PutVersion("k", fake.AzureVersion{Value: "second", Created: t0.Add(time.Minute)})
	f.PutVersion("k", fake.AzureVersion{Value: "first", Created: t0})
	f.PutVersion("k", fake.AzureVersion{Value: "third", Created: t0.Add(2 * time.Minute)})
	f.ResetRequests()
	got, err := s.Get(t.Context(), "k")
	if err != nil || string(got) != "first" {
		t.Fatalf("Get = %q, %v; want the oldest version \"first\"", got, err)
	}
	// Field by field: list the versions, then get the oldest by version.
	reqs := f.VaultRequests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %v; want list versions then get", calls(reqs))
	}
	list, get := reqs[0], reqs[1]
	if list.Method != "GET" || list.Path != "/secrets/k/versions" || list.APIVersion != fake.AzureAPIVersion ||
		len(list.Body) != 0 || !strings.HasPrefix(list.Auth, "Bearer ") {
		t.Errorf("list request = %+v", list)
	}
	if get.Method != "GET" || !strings.HasPrefix(get.Path, "/secrets/k/") || len(get.Path) != len("/secrets/k/")+32 ||
		get.APIVersion != fake.AzureAPIVersion || get.Auth != list.Auth {
		t.Errorf("get request = %+v", get)
	}
}

func TestOldestVersionUnusable(t *testing.T) {
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tests := []struct {
		name string
		v    fake.AzureVersion
		want error
	}{
		{"disabled", fake.AzureVersion{Disabled: true}, ErrDisabled},
		{"not-yet-valid", fake.AzureVersion{NotBefore: &future}, ErrNotYetValid},
		{"expired", fake.AzureVersion{Expires: &past}, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t)
			s := connect(t, c)
			tt.v.Value, tt.v.Created = "oldest", past
			f.PutVersion("k", tt.v)
			f.PutVersion("k", fake.AzureVersion{Value: "newer"})
			_, err := s.Get(t.Context(), "k")
			if !errors.Is(err, tt.want) || errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("Get = %v; want %v", err, tt.want)
			}
		})
	}
}

// TestTooManyVersions: the oldest of more versions than one listing page
// is unknown, an error as upstream; one full page is fine.
func TestTooManyVersions(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	t0 := time.Now().Add(-time.Hour)
	for i := range 25 {
		f.PutVersion("k", fake.AzureVersion{Value: "v" + itoa(i), Created: t0.Add(time.Duration(i) * time.Second)})
	}
	if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "v0" {
		t.Fatalf("Get of 25 versions = %q, %v; want v0", got, err)
	}
	f.PutVersion("k", fake.AzureVersion{Value: "v25"})
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, ErrTooManyVersions) {
		t.Fatalf("Get of 26 versions = %v; want ErrTooManyVersions", err)
	}
}

// TestBinaryValue: a value that is not UTF-8 (never written by upstream)
// is stored base64 under a content type that marks it.
func TestBinaryValue(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	value := []byte{0xff, 0x00, 0xfe}
	if err := s.Create(t.Context(), "bin", value); err != nil {
		t.Fatal(err)
	}
	v := f.Versions("bin")
	if len(v) != 1 || v[0].Value != base64.StdEncoding.EncodeToString(value) || v[0].ContentType != binaryContentType {
		t.Fatalf("stored = %+v", v)
	}
	if got, err := s.Get(t.Context(), "bin"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get = %x, %v", got, err)
	}
}

// TestCheckName: checkName takes exactly the names of Key Vault's rule,
// written here as the regular expression it replaced.
func TestCheckName(t *testing.T) {
	rule := regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	names := []string{"", "a", "-", "my-key-1", "My-Key", "my_key", "my.key", "a/b", "ключ", "a\n", "\x00", " a", "a ",
		strings.Repeat("a", 126), strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("Z9-", 42) + "x", "\xff"}
	for c := range 256 {
		names = append(names, string([]byte{byte(c)}))
	}
	for _, name := range names {
		want := rule.MatchString(name)
		err := checkName(name)
		if got := err == nil; got != want {
			t.Errorf("checkName(%q) = %v; the rule says valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%q) = %v; want ErrInvalidName", name, err)
		}
	}
}

func TestInvalidName(t *testing.T) {
	f, c := newFake(t)
	s := connect(t, c)
	for _, name := range []string{"my_key", "my.key", "a/b", "", strings.Repeat("a", 128), "ключ"} {
		if err := s.Create(t.Context(), name, []byte("v")); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q) = %v; want ErrInvalidName", name, err)
		}
		if _, err := s.Get(t.Context(), name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Get(%q) = %v; want ErrInvalidName", name, err)
		}
		if err := s.Delete(t.Context(), name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q) = %v; want ErrInvalidName", name, err)
		}
	}
	if err := s.Create(t.Context(), strings.Repeat("a", 127), []byte("v")); err != nil {
		t.Errorf("Create of a 127-character name: %v", err)
	}
	for _, r := range f.VaultRequests() {
		if strings.Contains(r.Path, "_") || strings.Contains(r.Path, ".") {
			t.Errorf("invalid name reached the vault: %s %s", r.Method, r.Path)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		c    Config
	}{
		{"no endpoint", Config{}},
		{"bad endpoint", Config{Endpoint: "vault.azure.net"}},
		{"plain http", Config{Endpoint: "http://x.vault.azure.net"}},
		{"both", Config{Endpoint: "https://x.vault.azure.net", Credentials: Credentials{"t", "c", "s"}, ManagedIdentityClientID: "m"}},
		{"partial credentials", Config{Endpoint: "https://x.vault.azure.net", Credentials: Credentials{TenantID: "t", ClientSecret: "s"}}},
	}
	for _, tt := range tests {
		if _, err := Connect(t.Context(), &tt.c, nil); err == nil {
			t.Errorf("%s: Connect succeeded", tt.name)
		}
	}
	c := Config{Endpoint: "https://x.vault.azure.net", Credentials: Credentials{"t", "c", testSecret}}
	if got := c.String(); got != "Azure KeyVault: https://x.vault.azure.net" || strings.Contains(got, testSecret) {
		t.Errorf("String() = %q", got)
	}
	// A managed identity: the credential is built without contacting anything.
	m := Config{Endpoint: "https://x.vault.azure.net", ManagedIdentityClientID: "00000000-0000-0000-0000-000000000001"}
	if s, err := Connect(t.Context(), &m, nil); err != nil {
		t.Errorf("Connect with managed identity: %v", err)
	} else {
		s.Close()
	}
}

// TestFakeRecover checks the fake's soft-delete states through the SDK
// itself: a deleted secret is first being deleted (409), then recoverable,
// and recovering it brings its versions back.
func TestFakeRecover(t *testing.T) {
	f, c := newFake(t)
	f.BeingDeletedFor = 1
	s := connect(t, c)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.SoftDelete("k")
	_, err := s.client.RecoverDeletedSecret(t.Context(), "k", nil)
	if e := vaultErr(err); e == nil || e.StatusCode != 409 || e.InnerCode != "ObjectIsBeingDeleted" {
		t.Fatalf("recover while being deleted = %v", err)
	}
	d, err := s.client.GetDeletedSecret(t.Context(), "k", nil)
	if err != nil || d.RecoveryID == nil || d.DeletedDate == nil || d.ID.Name() != "k" {
		t.Fatalf("GetDeletedSecret = %+v, %v", d, err)
	}
	if _, err := s.client.RecoverDeletedSecret(t.Context(), "k", nil); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if got, err := s.Get(t.Context(), "k"); err != nil || string(got) != "v" || f.SoftDeleted("k") {
		t.Fatalf("Get after recover = %q, %v", got, err)
	}
}

// FuzzValue: every value survives encodeValue then decodeValue, and a
// UTF-8 value is stored verbatim without a content type, as upstream.
func FuzzValue(f *testing.F) {
	for _, v := range storetest.Values(64) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		p := encodeValue(v)
		got, err := decodeValue(p.Value, p.ContentType)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("round trip of %q = %q, %v", v, got, err)
		}
		if utf8.Valid(v) && (p.ContentType != nil || *p.Value != string(v)) {
			t.Fatalf("UTF-8 value %q stored as %q (content type %v)", v, *p.Value, p.ContentType)
		}
	})
}
