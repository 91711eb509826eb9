package gcp_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/proto"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fake"
	"github.com/openkes/kes/internal/keystore/storetest"
	"github.com/openkes/kes/internal/vectors"
)

func TestConformance(t *testing.T) {
	storetest.RunOptions(t, func(t *testing.T) keystore.Store {
		// Pages of 5 secrets: listing reads several vendor pages.
		s, _ := newStore(t, fake.GCPOptions{MaxPageSize: 5})
		return s
	}, storetest.Options{MaxValueSize: 64 << 10})
}

// upstreamRecords returns stored key records exactly as upstream KES wrote
// them (the vectors' keystore directory), by name.
func upstreamRecords(t *testing.T) map[string][]byte {
	t.Helper()
	dir := vectors.Path(t, "keystore")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := make(map[string][]byte)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		recs[e.Name()] = b
	}
	if len(recs) == 0 {
		t.Fatal("no upstream key records")
	}
	return recs
}

// TestUpstreamLayout reads secrets written as upstream KES writes them
// (CreateSecret with automatic replication, then AddSecretVersion with the
// record as payload, through the real client) and checks that what the
// store writes has exactly that form, field by field.
func TestUpstreamLayout(t *testing.T) {
	g := fake.StartGCP(t, fake.GCPOptions{})
	sa := g.ServiceAccount(t, "kes")
	s := connect(t, config(g, sa))
	raw := rawClient(t, g, sa)
	recs := upstreamRecords(t)

	t.Run("read", func(t *testing.T) {
		for name, rec := range recs {
			_, err := raw.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
				Parent:   "projects/" + g.Project,
				SecretId: name,
				Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
					Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = raw.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
				Parent:  "projects/" + g.Project + "/secrets/" + name,
				Payload: &secretmanagerpb.SecretPayload{Data: rec},
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(t.Context(), name)
			if err != nil || !bytes.Equal(got, rec) {
				t.Errorf("Get(%s) = %q, %v; want upstream's record", name, got, err)
			}
		}
		// Get reads version 1, not the latest version.
		g.PutSecret("two-versions", []byte("first"), []byte("second"))
		if got, err := s.Get(t.Context(), "two-versions"); err != nil || string(got) != "first" {
			t.Errorf("Get(two-versions) = %q, %v; want version 1", got, err)
		}
	})

	t.Run("write", func(t *testing.T) {
		rec := recs["vec-created-1"]
		before := len(g.Requests())
		if err := s.Create(t.Context(), "written", rec); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(t.Context(), "written"); err != nil {
			t.Fatal(err)
		}
		reqs := g.Requests()[before:]
		want := []string{"CreateSecret", "AddSecretVersion", "AccessSecretVersion"}
		if got := methods(reqs); !slices.Equal(got, want) {
			t.Fatalf("requests = %q, want %q", got, want)
		}
		sum := int64(0)
		for _, r := range reqs {
			if r.Method == "AddSecretVersion" {
				sum = r.Msg.(*secretmanagerpb.AddSecretVersionRequest).GetPayload().GetDataCrc32C()
			}
		}
		wantMsgs := []proto.Message{
			&secretmanagerpb.CreateSecretRequest{
				Parent:   "projects/kes-project",
				SecretId: "written",
				Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
					Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
				}},
			},
			&secretmanagerpb.AddSecretVersionRequest{
				Parent:  "projects/kes-project/secrets/written",
				Payload: &secretmanagerpb.SecretPayload{Data: rec, DataCrc32C: &sum},
			},
			&secretmanagerpb.AccessSecretVersionRequest{Name: "projects/kes-project/secrets/written/versions/1"},
		}
		for i, w := range wantMsgs {
			if !proto.Equal(reqs[i].Msg, w) {
				t.Errorf("%s request = %v, want %v", reqs[i].Method, reqs[i].Msg, w)
			}
		}
		if sum == 0 {
			t.Error("AddSecretVersion sent no CRC32C of the payload")
		}
		// What upstream reads: the payload of version 1, the only version.
		resp, err := raw.AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{
			Name: "projects/" + g.Project + "/secrets/written/versions/1",
		})
		if err != nil || !bytes.Equal(resp.GetPayload().GetData(), rec) {
			t.Fatalf("upstream read = %v, %v; want the record", resp, err)
		}
		if v, _ := g.Versions("written"); len(v) != 1 {
			t.Fatalf("secret has %d versions, want 1", len(v))
		}
	})
}

func methods(reqs []fake.GCPRequest) []string {
	var m []string
	for _, r := range reqs {
		m = append(m, r.Method)
	}
	return m
}

func countMethod(reqs []fake.GCPRequest, method string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method {
			n++
		}
	}
	return n
}

// TestListPages lists more secrets than one page of the service holds and
// checks that every page was read with the previous page's token.
func TestListPages(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{MaxPageSize: 5})
	var want []string
	for i := range 12 {
		name := "key-" + string(rune('a'+i))
		want = append(want, name)
		if err := s.Create(t.Context(), name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	before := len(g.Requests())
	names, next, err := s.List(t.Context(), "", "", 0)
	if err != nil || next != "" || !slices.Equal(names, want) {
		t.Fatalf("List = %q, %q, %v; want %q", names, next, err, want)
	}
	var tokens []string
	for _, r := range g.Requests()[before:] {
		req := r.Msg.(*secretmanagerpb.ListSecretsRequest)
		if req.GetParent() != "projects/kes-project" || req.GetFilter() != "" {
			t.Errorf("ListSecrets request %v", req)
		}
		tokens = append(tokens, req.GetPageToken())
	}
	if len(tokens) != 3 || tokens[0] != "" || tokens[1] == "" || tokens[2] == "" || tokens[1] == tokens[2] {
		t.Fatalf("ListSecrets page tokens = %q; want 3 pages", tokens)
	}
}

// TestNames checks that names Secret Manager cannot hold are refused
// before any request, never mapped to another name.
func TestNames(t *testing.T) {
	s, g := newStore(t, fake.GCPOptions{})
	before := len(g.Requests())
	for _, name := range []string{"", "a/b", "a.b", "../x", strings.Repeat("k", 256), "ä"} {
		if err := s.Create(t.Context(), name, []byte("v")); err == nil || errors.Is(err, keystore.ErrExists) {
			t.Errorf("Create(%q): got %v, want an invalid-name error", name, err)
		}
		if _, err := s.Get(t.Context(), name); err == nil || errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q): got %v, want an invalid-name error", name, err)
		}
	}
	if n := len(g.Requests()) - before; n != 0 {
		t.Fatalf("%d requests for invalid names", n)
	}
	if err := s.Create(t.Context(), strings.Repeat("k", 255)+"", []byte("v")); err != nil {
		t.Fatalf("Create of a 255-byte name: %v", err)
	}
}
