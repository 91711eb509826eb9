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
