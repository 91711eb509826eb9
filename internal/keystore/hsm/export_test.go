//go:build cgo

package hsm

import "github.com/openkes/kes/internal/keystore"

// Quiesce runs fn while no PKCS#11 call of s is running: it takes every
// session slot of the pool, so callers wait, then gives them back. SoftHSM2
// frees a session that C_CloseAllSessions closes even while another thread
// is inside a call on it (it crashes), so tests drop sessions between calls.
func Quiesce(s keystore.Store, fn func()) {
	var st *Store
	switch s := s.(type) {
	case *Store:
		st = s
	case *replacerStore:
		st = s.Store
	case *overwriterStore:
		st = s.Store
	}
	t := st.key.(*token)
	for range cap(t.sem) {
		t.sem <- struct{}{}
	}
	fn()
	for range cap(t.sem) {
		<-t.sem
	}
}
