package peerbin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEnvWins(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENKES_PEERBIN_TEST_BIN", bin)
	p := &Peer{Name: "test server", Env: "OPENKES_PEERBIN_TEST_BIN", Script: "no-such-script.sh"}
	if got := p.Bin(t); got != bin {
		t.Fatalf("Bin = %q, want %q", got, bin)
	}
}

func TestMissing(t *testing.T) {
	t.Setenv("OPENKES_PEERBIN_TEST_BIN", "")
	p := &Peer{Name: "test server", Env: "OPENKES_PEERBIN_TEST_BIN", Script: "no-such-script.sh"}
	if _, err := p.find(); err == nil {
		t.Fatal("find of a peer without binary or script succeeded")
	}
	t.Setenv("OPENKES_PEERBIN_TEST_BIN", filepath.Join(t.TempDir(), "absent"))
	if _, err := p.find(); err == nil {
		t.Fatal("find of a missing file named by the environment succeeded")
	}
}

func TestLastLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\n", 5, "a"},
	} {
		if got := LastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
