package metrics_test

import (
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/openkes/kes/internal/metrics"
)

func TestKeyStoreOffline(t *testing.T) {
	m := metrics.New(time.Now())
	var offline atomic.Bool
	m.KeyStoreOffline(offline.Load)
	for _, want := range []float64{0, 1, 0} {
		offline.Store(want == 1)
		_, families := scrape(t, m, string(expfmt.FmtProtoDelim))
		f := families["kes_keystore_offline"]
		if f == nil || f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) != 1 || f.GetHelp() == "" {
			t.Fatalf("kes_keystore_offline: %v", f)
		}
		if got := f.GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Fatalf("kes_keystore_offline = %v, want %v", got, want)
		}
	}
}

// The HSM counters appear only once CountHSM is called, read their funcs
// at each scrape, and a second call (a reload) replaces the funcs.
func TestCountHSM(t *testing.T) {
	m := metrics.New(time.Now())
	if _, families := scrape(t, m, string(expfmt.FmtProtoDelim)); families["kes_hsm_operations"] != nil {
		t.Fatal("kes_hsm_operations before CountHSM")
	}
	var ops, errs atomic.Uint64
	m.CountHSM(func() (uint64, uint64) { return 0, 0 })
	ops.Store(7)
	errs.Store(2)
	m.CountHSM(func() (uint64, uint64) { return ops.Load(), errs.Load() })
	_, families := scrape(t, m, string(expfmt.FmtProtoDelim))
	for name, want := range map[string]float64{"kes_hsm_operations": 7, "kes_hsm_errors": 2} {
		f := families[name]
		if f == nil || f.GetType() != dto.MetricType_COUNTER || len(f.GetMetric()) != 1 || f.GetHelp() == "" {
			t.Fatalf("%s: %v", name, f)
		}
		if got := f.GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
