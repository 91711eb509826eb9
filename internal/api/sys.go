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

func (s *Server) getVersion(w http.ResponseWriter, _ *request) {
	writeJSON(w, kes.VersionResponse{Version: s.version, Commit: s.commit})
}

func (s *Server) getReady(w http.ResponseWriter, r *request) {
	ctx, cancel := r.storeContext()
	defer cancel()
	if _, err := r.state.keys.Status(ctx); err != nil {
		if ctx.Err() != nil {
			s.errLog.Warn(err.Error(), reqAttrs(r))
			writeError(w, errTimeout)
			return
		}
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

func (s *Server) getStatus(w http.ResponseWriter, r *request) {
	resp := kes.StatusResponse{
		Version:    s.version,
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		UpTime:     int64(time.Since(s.started).Round(time.Second) / time.Second),
		CPUs:       runtime.NumCPU(),
		UsableCPUs: runtime.GOMAXPROCS(0),
	}
	resp.HeapAlloc, resp.StackAlloc = memStats()
	ctx, cancel := r.storeContext()
	defer cancel()
	state, err := r.state.keys.Status(ctx)
	if err != nil && ctx.Err() != nil {
		writeError(w, errTimeout)
		return
	}
	if err != nil {
		// Upstream sends only keystore_unreachable; the kms-go SDK rejects a
		// status with it but without keystore_unavailable, so both are sent.
		resp.KeyStoreUnreachable, resp.KeyStoreUnavailable = true, true
	} else {
		resp.KeyStoreLatency = max(1, state.Latency.Round(time.Millisecond).Milliseconds())
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

func (s *Server) getAPIs(w http.ResponseWriter, r *request) {
	routes := r.state.routes
	resp := make([]kes.API, 0, len(routes))
	for i := range routes {
		rt := &routes[i]
		resp = append(resp, kes.API{
			Method:  rt.Method,
			Path:    rt.Path,
			MaxBody: rt.MaxBody,
			Timeout: int64(rt.Timeout / time.Second),

			Extension: rt.Ext,
		})
	}
	writeJSON(w, resp)
}
