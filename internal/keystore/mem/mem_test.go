package mem_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/keystore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keystore.Store { return new(mem.Store) })
}

func TestZeroValue(t *testing.T) {
	var s mem.Store
	ctx := t.Context()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get on zero Store: got %v, want keystore.ErrNotFound", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Delete on zero Store: got %v, want keystore.ErrNotFound", err)
	}
	if names, next, err := s.List(ctx, "", "", 0); err != nil || names != nil || next != "" {
		t.Fatalf("List on zero Store = %q, %q, %v", names, next, err)
	}
	if err := s.Create(ctx, "k", nil); err != nil {
		t.Fatalf("Create on zero Store: %v", err)
	}
	if v, err := s.Get(ctx, "k"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get of empty value = %#v, %v; want empty non-nil", v, err)
	}
}

func TestGetReturnsCopy(t *testing.T) {
	var s mem.Store
	if err := s.Create(t.Context(), "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Get(t.Context(), "k")
	copy(v, "XXXXX")
	if v, _ := s.Get(t.Context(), "k"); string(v) != "value" {
		t.Fatalf("stored value changed through a returned slice: %q", v)
	}
}

func TestStatusLatency(t *testing.T) {
	var s mem.Store
	state, err := s.Status(t.Context())
	if err != nil || state.Latency != mem.Latency {
		t.Fatalf("Status = %v, %v; want latency %v", state, err, mem.Latency)
	}
}

func TestListPageSize(t *testing.T) {
	var s mem.Store
	for i := range keystore.ListPageSize + 1 {
		if err := s.Create(t.Context(), fmt.Sprintf("k%05d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	names, next, err := s.List(t.Context(), "", "", 0)
	if err != nil || len(names) != keystore.ListPageSize || next == "" {
		t.Fatalf("List = %d names, next %q, %v; want %d and a next name", len(names), next, err, keystore.ListPageSize)
	}
	rest, next2, err := s.List(t.Context(), "", next, 0)
	if err != nil || len(rest) != 1 || rest[0] != next || next2 != "" {
		t.Fatalf("second page = %q, %q, %v; want [%s]", rest, next2, err, next)
	}
}

func TestCanceledContext(t *testing.T) {
	var s mem.Store
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Create(ctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with canceled ctx: got %v, want context.Canceled", err)
	}
	if _, err := s.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Status with canceled ctx: got %v, want context.Canceled", err)
	}
}
