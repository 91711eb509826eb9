package kes

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"strings"
)

// maxListPages bounds the pages one listing follows, so that a server that
// keeps answering continue_at cannot keep the iterator busy forever.
const maxListPages = 1 << 16

// listNames iterates the names of GET /v1/<kind>/list/<prefix>, following
// continue_at. page extracts the names and the continuation of a decoded
// response of type R.
func listNames[R any, N ~string](ctx context.Context, c *Client, kind, prefix string, page func(*R) ([]N, string)) iter.Seq2[N, error] {
	prefix = strings.TrimSuffix(prefix, "*")
	return func(yield func(N, error) bool) {
		resource, last := prefix, N("")
		if resource == "" {
			resource = "*" // all names; avoids the redirect of an empty resource
		}
		for range maxListPages {
			names, next, err := fetchPage(ctx, c, kind, resource, page)
			if err != nil {
				yield("", err)
				return
			}
			for _, n := range names {
				// The server treats continue_at as a prefix too: skip names
				// already listed or outside the prefix.
				if (last != "" && n <= last) || !strings.HasPrefix(string(n), prefix) {
					continue
				}
				if !yield(n, nil) {
					return
				}
				last = n
			}
			if next == "" || next == resource || !strings.HasPrefix(next, prefix) {
				return
			}
			resource = next
		}
	}
}

func fetchPage[R any, N ~string](ctx context.Context, c *Client, kind, resource string, page func(*R) ([]N, string)) ([]N, string, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: []string{"v1", kind, "list", resource}})
	if err != nil {
		return nil, "", err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/x-ndjson" {
		defer resp.Body.Close()
		names, err := parseLegacyList[N](resp.Body)
		return names, "", err
	}
	var r R
	if err := decodeJSON(resp, &r); err != nil {
		return nil, "", err
	}
	names, next := page(&r)
	return names, next, nil
}

// parseLegacyList decodes the NDJSON listings of servers before 2023-11:
// one object per line with "name" (or "Name", or "identity" for
// identities), or an "error" line.
func parseLegacyList[N ~string](r io.Reader) ([]N, error) {
	var names []N
	s := bufio.NewScanner(io.LimitReader(r, maxResponseSize))
	s.Buffer(make([]byte, 0, 4096), 64<<10)
	for s.Scan() {
		if len(strings.TrimSpace(s.Text())) == 0 {
			continue
		}
		var v struct {
			Name     string `json:"name"` // matches "Name" too
			Identity string `json:"identity"`
			Error    string `json:"error"`
		}
		if err := json.Unmarshal(s.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("kes: invalid list response: %w", err)
		}
		switch {
		case v.Error != "":
			return nil, NewError(http.StatusInternalServerError, v.Error)
		case v.Identity != "":
			names = append(names, N(v.Identity))
		default:
			names = append(names, N(v.Name))
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("kes: invalid list response: %w", err)
	}
	return names, nil
}
