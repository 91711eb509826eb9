package gcp_test

import (
	"fmt"
	"testing"

	"github.com/openkes/kes/internal/keystore/fake"
)

// BenchmarkGet reads one key through the real client and the fake over
// loopback TLS: the store's and the SDK's cost per read, without network.
func BenchmarkGet(b *testing.B) {
	g := fake.StartGCP(b, fake.GCPOptions{})
	s := connect(b, config(g, g.ServiceAccount(b, "kes")))
	if err := s.Create(b.Context(), "k", make([]byte, 256)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Get(b.Context(), "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate creates keys (CreateSecret and AddSecretVersion).
func BenchmarkCreate(b *testing.B) {
	g := fake.StartGCP(b, fake.GCPOptions{})
	s := connect(b, config(g, g.ServiceAccount(b, "kes")))
	i := 0
	for b.Loop() {
		i++
		if err := s.Create(b.Context(), fmt.Sprintf("k-%d", i), make([]byte, 256)); err != nil {
			b.Fatal(err)
		}
	}
}
