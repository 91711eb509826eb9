package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/server"
	"github.com/openkes/kes/internal/version"
)

func orUnknown(s string) string {
	if s == "" {
		return version.Unknown
	}
	return s
}

// printBanner prints the startup summary, as upstream's two-column banner.
// apiKey is the dev-mode admin API key, empty otherwise; dumpErr is the
// error of making the process non-dumpable; memory describes the memory
// limit in force (memoryLimit).
func printBanner(w io.Writer, s *server.Config, apiKey string, addr net.Addr, dumpErr error, memory string) {
	line := func(k, v string) { fmt.Fprintf(w, "%-11s%s\n", k, v) }
	line("Version", version.Get().String())
	line("Runtime", fmt.Sprintf("%s %s/%s compiler=%s", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.Compiler))
	line("License", "MIT https://opensource.org/license/mit")
	fmt.Fprintln(w)
	line("KMS", s.Banner)
	if s.HSM != "" {
		line("HSM", s.HSM)
	}
	for _, ip := range listenIPs(addr) {
		line("API", "· https://"+net.JoinHostPort(ip, port(addr)))
	}
	fmt.Fprintln(w)
	if apiKey != "" {
		line("API Key", apiKey)
	}
	admin := "<disabled>"
	if isHexIdentity(string(s.Admin)) {
		admin = string(s.Admin)
	}
	line("Admin", admin)
	line("Logs", fmt.Sprintf("error=stderr level=%s", s.ErrorLevel))
	if s.AuditLevel <= slog.LevelInfo {
		line("", fmt.Sprintf("audit=%s level=%s", auditOutputs(s), s.AuditLevel))
	}
	line("Memory", keyMemory(crypto.LockedMemory(), dumpErr))
	line("Mem limit", memory)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "=> Server is up and running...")
}

// auditOutputs names where the audit log goes besides its stream:
// "stdout", "file:<path>", "syslog:<network>:<address>", comma-separated,
// or "stream" when only subscribers get it.
func auditOutputs(s *server.Config) string {
	var outs []string
	if !s.AuditStdoutOff {
		outs = append(outs, "stdout")
	}
	if s.AuditFile != nil {
		outs = append(outs, "file:"+s.AuditFile.Path)
	}
	if s.AuditSyslog != nil {
		outs = append(outs, "syslog:"+s.AuditSyslog.Network+":"+s.AuditSyslog.Address)
	}
	if len(outs) == 0 {
		return "stream"
	}
	return strings.Join(outs, ",")
}

// keyMemory says where the key bytes are kept: always in the locked arena
// of internal/crypto (--mlock, which upstream used to lock the whole
// process, is not needed and ignored), and whether the process can be
// dumped.
func keyMemory(m crypto.Memory, dumpErr error) string {
	var s string
	if m.Locked && m.NoDump && m.Guarded {
		s = "keys in locked memory (mlock, no core dump, guard pages)"
	} else {
		s = "keys NOT in locked memory: " + m.Problem
	}
	if dumpErr != nil {
		return s + "; process dumpable: " + dumpErr.Error()
	}
	return s + "; process not dumpable"
}

func isHexIdentity(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func port(addr net.Addr) string {
	_, p, _ := net.SplitHostPort(addr.String())
	return p
}

// listenIPs returns the addresses clients can reach the listener on: the
// listen IP, or every interface address when it listens on all of them.
func listenIPs(addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		host, _, _ := net.SplitHostPort(addr.String())
		return []string{host}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return []string{"0.0.0.0"}
	}
	var ips []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ips = append(ips, n.IP.String())
		}
	}
	return ips
}

// memoryLimit describes the process's memory limit for the banner, once
// the server has set its default: its size and where it comes from.
func memoryLimit(env *Env) string {
	limit := debug.SetMemoryLimit(-1) // reads the limit
	source := "default; GOMEMLIMIT changes it"
	lookup := env.LookupEnv
	if lookup == nil { // as server.Server
		lookup = os.LookupEnv
	}
	if _, ok := lookup("GOMEMLIMIT"); ok {
		source = "GOMEMLIMIT"
	}
	if limit == math.MaxInt64 {
		return "off (" + source + ")"
	}
	return fmt.Sprintf("%d MiB (%s)", limit>>20, source)
}
