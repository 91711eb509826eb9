package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuUsage is the CPU time a process has used so far, read two ways.
type cpuUsage struct {
	// Sched is the sum of the on-CPU time of the live threads
	// (/proc/PID/task/*/schedstat). Zero if schedstat is unavailable.
	Sched time.Duration
	// Stat is utime+stime of /proc/PID/stat, dead threads included, with
	// a resolution of one clock tick.
	Stat time.Duration
}

// Best returns Sched if it is available, else Stat.
func (u cpuUsage) Best() time.Duration {
	if u.Sched > 0 {
		return u.Sched
	}
	return u.Stat
}

// readCPU returns the CPU time used by process pid.
func readCPU(pid int) (cpuUsage, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return cpuUsage{}, err
	}
	stat, err := parseStat(b)
	if err != nil {
		return cpuUsage{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	sched, err := readSchedstat(dir)
	if err != nil {
		sched = 0 // fall back to Stat
	}
	return cpuUsage{Sched: sched, Stat: stat}, nil
}

// parseStat returns utime+stime of a /proc/PID/stat line. The command name
// (field 2) is in parentheses and may contain spaces and parentheses, so
// fields are counted after its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	// After ")": field 3 (state) onwards; utime and stime are fields 14, 15.
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 13 {
		return 0, errors.New("malformed stat: too few fields")
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// readSchedstat returns the summed on-CPU time of the threads of the
// process whose /proc directory is dir.
func readSchedstat(dir string) (time.Duration, error) {
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited since ReadDir
		}
		if err != nil {
			return 0, err
		}
		ns, err := parseSchedstat(b)
		if err != nil {
			return 0, err
		}
		sum += ns
	}
	return sum, nil
}

// parseSchedstat returns the first field of a schedstat line: the time
// spent on the CPU, in nanoseconds.
func parseSchedstat(b []byte) (time.Duration, error) {
	fields := bytes.Fields(b)
	if len(fields) == 0 {
		return 0, errors.New("malformed schedstat")
	}
	ns, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("malformed schedstat %q", fields[0])
	}
	return time.Duration(ns), nil
}

// readRSS returns VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseRSS(b)
}

// parseRSS returns the VmRSS line of a /proc/PID/status file in bytes.
func parseRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("malformed VmRSS line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed VmRSS line: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS in status")
}
