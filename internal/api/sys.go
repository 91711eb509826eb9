package api

import (
	"crypto/rand"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/keystore"
)

func readRandom(random io.Reader, b []byte) error {
	if random == nil {
		random = rand.Reader
	}
	_, err := io.ReadFull(random, b)
	return err
}

type versionResponse struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

func (s *Server) getVersion(w http.ResponseWriter, _ *request) {
	writeJSON(w, versionResponse{Version: s.version, Commit: s.commit})
}

func (s *Server) getReady(w http.ResponseWriter, r *request) {
	if _, err := s.keys.Status(r.Context()); err != nil {
		if keystore.IsUnreachable(err) {
			s.errLog.Warn(err.Error(), reqAttrs(r))
			writeError(w, kes.ErrStoreUnreachable)
			return
		}
		s.errLog.Warn(err.Error(), reqAttrs(r))
		writeError(w, kes.ErrStoreUnavailable)
		return
	}
	writeOK(w)
}

type statusResponse struct {
	Version    string `json:"version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	UpTime     int64  `json:"uptime"`
	CPUs       int    `json:"num_cpu"`
	UsableCPUs int    `json:"num_cpu_used"`
	HeapAlloc  uint64 `json:"mem_heap_used"`
	StackAlloc uint64 `json:"mem_stack_used"`

	StoreLatency int64 `json:"keystore_latency,omitempty"` // milliseconds
	// Upstream sends only keystore_unreachable; the kms-go SDK rejects a
	// status with it but without keystore_unavailable, so both are sent.
	StoreUnreachable bool `json:"keystore_unreachable,omitempty"`
	StoreUnavailable bool `json:"keystore_unavailable,omitempty"`
}

func (s *Server) getStatus(w http.ResponseWriter, r *request) {
	resp := statusResponse{
		Version:    s.version,
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		UpTime:     int64(time.Since(s.started).Round(time.Second) / time.Second),
		CPUs:       runtime.NumCPU(),
		UsableCPUs: runtime.GOMAXPROCS(0),
	}
	resp.HeapAlloc, resp.StackAlloc = memStats()
	state, err := s.keys.Status(r.Context())
	if err != nil {
		resp.StoreUnreachable, resp.StoreUnavailable = true, true
	} else {
		resp.StoreLatency = max(1, state.Latency.Round(time.Millisecond).Milliseconds())
	}
	writeJSON(w, resp)
}

// memStats reads heap and stack bytes without stopping the world, as
// runtime.ReadMemStats would.
func memStats() (heap, stack uint64) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindUint64 {
		heap = samples[0].Value.Uint64()
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		stack = samples[1].Value.Uint64()
	}
	return heap, stack
}

func (s *Server) getMetrics(w http.ResponseWriter, r *request) {
	s.metrics.Handler().ServeHTTP(w, r.Request)
}

type apiResponse struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	MaxBody int64  `json:"max_body"`
	Timeout int64  `json:"timeout"` // seconds
}

func (s *Server) getAPIs(w http.ResponseWriter, _ *request) {
	resp := make([]apiResponse, 0, len(s.routes))
	for i := range s.routes {
		rt := &s.routes[i]
		resp = append(resp, apiResponse{
			Method:  rt.Method,
			Path:    rt.Path,
			MaxBody: rt.MaxBody,
			Timeout: int64(rt.Timeout / time.Second),
		})
	}
	writeJSON(w, resp)
}
