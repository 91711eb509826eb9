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
