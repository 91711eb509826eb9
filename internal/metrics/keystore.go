package metrics

import "github.com/prometheus/client_golang/prometheus"

// KeyStoreOffline adds the gauge kes_keystore_offline, which is 1 while
// offline reports true and 0 otherwise; offline is called at every scrape
// and must be safe for concurrent use. Upstream has no such gauge: it lets
// an operator see when the server answers key store requests at once with
// an error instead of waiting for a store that is down. Call it at most
// once.
func (m *Metrics) KeyStoreOffline(offline func() bool) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kes_keystore_offline",
		Help: "1 while the key store counts as offline and requests that need it fail at once, else 0.",
	}, func() float64 {
		if offline() {
			return 1
		}
		return 0
	}))
}

// CountHSM adds the counters kes_hsm_operations and kes_hsm_errors (not in
// upstream), which read counters at every scrape: the encryptions and
// decryptions of the HSM that wraps the key store's records (docs/hsm.md)
// and those that failed. The families are registered at the first call; a
// later call (a reload) replaces counters. counters must be safe for
// concurrent use and its results never decrease.
func (m *Metrics) CountHSM(counters func() (ops, errs uint64)) {
	m.hsm.Store(&counters)
	m.hsmOnce.Do(func() {
		m.registry.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kes_hsm_operations",
				Help: "Number of encryptions and decryptions by the HSM that wraps the stored keys.",
			}, func() float64 { ops, _ := (*m.hsm.Load())(); return float64(ops) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kes_hsm_errors",
				Help: "Number of HSM encryptions and decryptions that failed.",
			}, func() float64 { _, errs := (*m.hsm.Load())(); return float64(errs) }),
		)
	})
}
