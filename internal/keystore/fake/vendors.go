package fake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// VendorRequest is a request received by one of the REST fakes (Fortanix,
// CipherTrust, KeyControl), recorded before it is answered.
type VendorRequest struct {
	Method string
	Path   string // decoded path
	Query  url.Values
	Header http.Header
	Body   []byte         // raw body
	JSON   map[string]any // Body decoded as a JSON object; nil if it is not one or is over 64 KiB
}

// maxRecordedJSON bounds the bodies decoded into VendorRequest.JSON: tests
// check the fields of small requests, and decoding megabyte values twice
// only slows the race detector down.
const maxRecordedJSON = 64 << 10

// VendorFault makes a REST fake answer requests that match it with a failure
// instead of serving them.
type VendorFault struct {
	// Method and Path select requests ("" = any). Path is a prefix of the
	// decoded request path.
	Method, Path string

	// Status and Body are the answer; RetryAfter, if set, is sent as the
	// Retry-After header.
	Status     int
	Body       string
	RetryAfter string

	// Stall makes the fake hold the request until the client gives up (or
	// the server closes) instead of answering.
	Stall bool

	// Times is how many matching requests fail; 0 means 1.
	Times int
}

// vendorServer is the part shared by the REST fakes: a TLS test server,
// request recording, fault injection and a connection count.
type vendorServer struct {
	srv  *httptest.Server
	stop chan struct{} // closed before the server closes, so stalls end

	mu       sync.Mutex
	requests []VendorRequest
	faults   []VendorFault
	conns    int
	changed  chan struct{} // closed and replaced on every request
}

func newVendorServer(t testing.TB, h http.Handler) *vendorServer {
	t.Helper()
	v := &vendorServer{stop: make(chan struct{}), changed: make(chan struct{})}
	v.srv = httptest.NewUnstartedServer(v.wrap(h))
	v.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected test certificates are expected
	v.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			v.mu.Lock()
			v.conns++
			v.mu.Unlock()
		}
	}
	v.srv.StartTLS()
	t.Cleanup(func() {
		close(v.stop)
		v.srv.Close()
	})
	return v
}

// URL returns the base URL of the server (https://127.0.0.1:port).
func (v *vendorServer) URL() string { return v.srv.URL }

// CAFile writes the server's certificate, the only one its clients must
// trust, as PEM to a new temporary file and returns its path.
func (v *vendorServer) CAFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Requests returns a copy of the requests received so far, oldest first.
func (v *vendorServer) Requests() []VendorRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.requests)
}

// ResetRequests forgets the recorded requests.
func (v *vendorServer) ResetRequests() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests = nil
}

// Conns returns the number of TCP connections clients opened so far. A
// client that reads and closes every response body reuses one connection
// for sequential requests.
func (v *vendorServer) Conns() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.conns
}

// Inject adds a fault; faults are matched in the order added.
func (v *vendorServer) Inject(f VendorFault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.faults = append(v.faults, f)
}

// WaitFor blocks until cond, called with the recorded requests after each
// new one, returns true, or ctx ends (it then returns ctx's error).
func (v *vendorServer) WaitFor(ctx context.Context, cond func([]VendorRequest) bool) error {
	for {
		v.mu.Lock()
		ok := cond(v.requests)
		ch := v.changed
		v.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// CountRequests returns how many recorded requests have the method and path.
func CountRequests(reqs []VendorRequest, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func (v *vendorServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		rec := VendorRequest{
			Method: r.Method,
			Path:   r.URL.Path,
			Query:  r.URL.Query(),
			Header: r.Header.Clone(),
			Body:   body,
		}
		if len(body) > 0 && len(body) <= maxRecordedJSON {
			var m map[string]any
			if json.Unmarshal(body, &m) == nil {
				rec.JSON = m
			}
		}
		v.mu.Lock()
		v.requests = append(v.requests, rec)
		close(v.changed)
		v.changed = make(chan struct{})
		f, ok := v.takeFault(r)
		v.mu.Unlock()
		if ok {
			switch {
			case f.Stall:
				select {
				case <-r.Context().Done():
				case <-v.stop:
				}
				// A stalled server never answers: abort the stream
				// instead of letting net/http send an empty 200, which a
				// client racing its own deadline could read.
				panic(http.ErrAbortHandler)
			default:
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.Status)
				io.WriteString(w, f.Body)
			}
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

func (v *vendorServer) takeFault(r *http.Request) (VendorFault, bool) {
	for i, f := range v.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			v.faults[i].Times--
			if v.faults[i].Times == 0 {
				v.faults = slices.Delete(v.faults, i, i+1)
			}
			return f, true
		}
	}
	return VendorFault{}, false
}

// vendorJSON answers with status and v as JSON.
func vendorJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// vendorID returns 16 random bytes in hex.
func vendorID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// vendorDecode decodes the JSON request body into v; it answers 400 and
// returns false if it cannot.
func vendorDecode(w http.ResponseWriter, r *http.Request, v any, errBody func(string) any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		vendorJSON(w, http.StatusBadRequest, errBody("invalid JSON body: "+err.Error()))
		return false
	}
	return true
}
