package crypto_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/crypto"
)

// TestLockedMemory: key bytes lie in a mapping that is locked (VmFlags
// "lo"), excluded from core dumps ("dd") and between inaccessible guard
// pages, and the process's VmLck grows by the arena's chunks only.
// Measured here: VmLck is 0 kB before the first key (the process locks
// nothing else), then 4 kB per 128 key slots (a SecretKey or an HMACKey
// each): 64 kB for 1,000 keys.
func TestLockedMemory(t *testing.T) {
	m := crypto.LockedMemory()
	if !m.Locked || !m.NoDump || !m.Guarded {
		t.Fatalf("key memory %+v; the test needs RLIMIT_MEMLOCK of a few MB (ulimit -l)", m)
	}
	before, kbBefore := vmLck(t), m.LockedKB
	keys := make([]crypto.Key, 1000)
	for i := range keys {
		k, err := crypto.GenerateKey(crypto.AES256, "", time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	after := crypto.LockedMemory()
	grown := vmLck(t) - before
	t.Logf("VmLck %d kB -> %d kB for %d keys; key memory %+v", before, before+grown, len(keys), after)
	if want := after.LockedKB - kbBefore; grown != want || grown > 2*len(keys)*crypto.KeySize/1024+8 {
		t.Errorf("VmLck grew by %d kB, the arena by %d kB", grown, want)
	}
	maps := readMappings(t)
	for _, addr := range []uintptr{crypto.KeyAddr(keys[0].Secret), crypto.HMACKeyAddr(*keys[999].HMAC)} {
		i := findMapping(maps, addr)
		if i < 0 {
			t.Fatalf("key bytes at %#x are in no mapping", addr)
		}
		mp := maps[i]
		if !strings.Contains(" "+mp.flags+" ", " lo ") || !strings.Contains(" "+mp.flags+" ", " dd ") {
			t.Errorf("key bytes at %#x: mapping %s with VmFlags %q, want lo (locked) and dd (no dump)", addr, mp.line, mp.flags)
		}
		if i == 0 || i == len(maps)-1 || maps[i-1].end != mp.start || maps[i+1].start != mp.end ||
			!strings.HasPrefix(maps[i-1].perms, "---") || !strings.HasPrefix(maps[i+1].perms, "---") {
			t.Errorf("key bytes at %#x: mapping %s is not between guard pages", addr, mp.line)
		}
	}
}

// vmLck returns VmLck of /proc/self/status in kB.
func vmLck(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

type mapping struct {
	start, end   uintptr
	perms, flags string
	line         string
}

// readMappings returns the mappings of /proc/self/smaps in address order.
func readMappings(t *testing.T) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var maps []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && len(maps) > 0 {
			maps[len(maps)-1].flags = strings.TrimSpace(v)
			continue
		}
		var m mapping
		var perms string
		if n, _ := fmt.Sscanf(line, "%x-%x %s", &m.start, &m.end, &perms); n == 3 {
			m.perms, m.line = perms, line
			maps = append(maps, m)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return maps
}

func findMapping(maps []mapping, addr uintptr) int {
	for i, m := range maps {
		if m.start <= addr && addr < m.end {
			return i
		}
	}
	return -1
}
