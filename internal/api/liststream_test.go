package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/fs"
	"github.com/openkes/kes/internal/vectors"
)

// pagedStore lists 2,500 made-up names in pages; with fail set, every page
// after the first fails.
type pagedStore struct {
	keystore.Store
	fail bool
}

func (s *pagedStore) List(_ context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	if s.fail && continueAt != "" {
		return nil, "", errors.New("pagedStore: the disk is gone")
	}
	page, next := keystore.Page(pagedNames(), prefix, continueAt, n)
	return page, next, nil
}

func pagedNames() []string {
	names := make([]string, 2500)
	for i := range names {
		names[i] = fmt.Sprintf("k%04d", i)
	}
	return names
}

// TestListStreamed: a key listing of several store pages is streamed as
// one JSON body with every name (issue 12), and a store error after the
// first page breaks the body instead of answering a short list.
func TestListStreamed(t *testing.T) {
	for _, fail := range []bool{false, true} {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("fail=%v/h2=%v", fail, h2), func(t *testing.T) {
				ts := startServer(t, serverOptions{store: func(dir string) keystore.Store {
					s, err := fs.New(dir)
					if err != nil {
						t.Fatal(err)
					}
					return &pagedStore{Store: s, fail: fail}
				}})
				keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
				c := ts.client(t, apiKeyCert(t, keys[0].APIKey), h2)
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/v1/key/list/k*", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, readErr := io.ReadAll(resp.Body)
				var l kes.ListKeysResponse
				decodeErr := json.Unmarshal(body, &l)
				if fail {
					if readErr == nil && decodeErr == nil {
						t.Fatalf("a failing second page answered %d with %d names, want a broken response", resp.StatusCode, len(l.Names))
					}
					if !strings.HasPrefix(string(body), `{"names":["k0000",`) {
						t.Fatalf("body starts %.40q, want the first page", body)
					}
					return
				}
				if resp.StatusCode != http.StatusOK || readErr != nil || decodeErr != nil {
					t.Fatalf("list: %d, %v, %v", resp.StatusCode, readErr, decodeErr)
				}
				if !slices.Equal(l.Names, pagedNames()) {
					t.Fatalf("listed %d names, want the 2500 in order", len(l.Names))
				}
			})
		}
	}
}
