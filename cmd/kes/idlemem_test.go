//go:build linux

package main

import (
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Bounds of TestIdleMemory. Private memory (RssAnon: Go heap, stacks,
// runtime and C memory) does not depend on the page cache; it was 5.0 MiB
// when measured. The pages of the binary (RssFile) do: a binary written in
// large chunks (GNU ld, as cgo links with, or a cp) sits in 2 MiB page
// cache folios that the kernel maps whole, so RssFile is then about all of
// text, rodata and pclntab (28 MiB of a 41 MiB binary); written in small
// chunks, or after the folios were split, about 23 MiB. VmRSS was 28 to
// 35 MiB for the same binary. See BENCHMARKS.md, "Idle memory".
const (
	maxIdleAnon = 8 << 20
	maxIdleRSS  = 40 << 20
)

// TestIdleMemory starts the built server on an fs store, creates a key,
// generates and decrypts a data key with it and checks the server's
// resident memory: private memory under maxIdleAnon and VmRSS under
// maxIdleRSS. It logs the figures and the binary's loaded size, so a
// failure shows whether the heap or the binary grew.
func TestIdleMemory(t *testing.T) {
	s := newFSServer(t, "")
	if code, reply := s.mustDo(t, http.MethodPost, "/v1/key/create/idle-key", nil); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, reply)
	}
	if err := s.roundTrip(t.Context(), "idle-key"); err != nil {
		t.Fatal(err)
	}
	s.hc.CloseIdleConnections()

	pid := s.cmd.Process.Pid
	status := procFields(t, fmt.Sprintf("/proc/%d/status", pid))
	rollup := procFields(t, fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	loaded := loadedSize(t, s.bin)
	t.Logf("idle: VmRSS %.1f MiB = RssAnon %.1f MiB + RssFile %.1f MiB (%.1f MiB of it mapped as 2 MiB pages) + RssShmem %.1f MiB; read-only segments of the binary %.1f MiB",
		mib(status["VmRSS"]), mib(status["RssAnon"]), mib(status["RssFile"]), mib(rollup["FilePmdMapped"]), mib(status["RssShmem"]), mib(loaded))
	if anon := status["RssAnon"]; anon >= maxIdleAnon {
		t.Errorf("idle RssAnon %.1f MiB, want < %.0f MiB", mib(anon), mib(maxIdleAnon))
	}
	if rss := status["VmRSS"]; rss >= maxIdleRSS {
		t.Errorf("idle VmRSS %.1f MiB, want < %.0f MiB", mib(rss), mib(maxIdleRSS))
	}
}

// procFields returns the "Name: N kB" lines of a /proc file in bytes.
func procFields(t *testing.T, name string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	fields := make(map[string]int64)
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			fields[strings.TrimSuffix(f[0], ":")] = kb << 10
		}
	}
	if fields["VmRSS"] == 0 && fields["Rss"] == 0 {
		t.Fatalf("%s: no VmRSS or Rss line", name)
	}
	return fields
}

// loadedSize returns the size of the read-only loadable segments of the
// ELF binary bin (text, rodata, pclntab): what RssFile approaches when the
// kernel maps the binary's page cache folios whole.
func loadedSize(t *testing.T, bin string) int64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W == 0 {
			n += int64(p.Memsz)
		}
	}
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
