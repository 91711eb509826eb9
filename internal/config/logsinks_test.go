package config_test

import (
	"testing"
	"time"

	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/log"
)

func TestLogSinks(t *testing.T) {
	t.Setenv("KES_TEST_SYSLOG", "10.0.0.9:514")
	f, err := config.Parse([]byte(valid(
		"log:",
		"  audit_stdout: off",
		"  audit_file:",
		"    path: /var/log/kes/audit.log",
		"    max_size: 64MiB",
		"    rotate_every: 24h",
		"    max_backups: 30",
		"    max_age: 720h",
		"  audit_syslog:",
		"    network: tcp",
		"    address: ${KES_TEST_SYSLOG}",
		"    facility: local3",
		"    app_name: kes-audit",
		"    hostname: kes-1",
	)), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Log.AuditStdoutOff {
		t.Error("AuditStdoutOff not set")
	}
	wantFile := log.FileConfig{Path: "/var/log/kes/audit.log", MaxSize: 64 << 20, RotateEvery: 24 * time.Hour, MaxBackups: 30, MaxAge: 720 * time.Hour}
	if f.Log.AuditFile == nil || *f.Log.AuditFile != wantFile {
		t.Errorf("AuditFile = %+v, want %+v", f.Log.AuditFile, wantFile)
	}
	wantSyslog := log.SyslogConfig{Network: "tcp", Address: "10.0.0.9:514", Facility: "local3", AppName: "kes-audit", Hostname: "kes-1"}
	if f.Log.AuditSyslog == nil || *f.Log.AuditSyslog != wantSyslog {
		t.Errorf("AuditSyslog = %+v, want %+v", f.Log.AuditSyslog, wantSyslog)
	}

	// Without the keys: stdout on, no sinks.
	f, err = config.Parse([]byte(valid("log:", "  audit: on", "  audit_file:", "  audit_syslog: ~")), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	if f.Log.AuditStdoutOff || f.Log.AuditFile != nil || f.Log.AuditSyslog != nil {
		t.Errorf("Log = %+v, want no sinks", f.Log)
	}
}

func TestLogSinkSizes(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "10B": 10, "1KB": 1000, "1KiB": 1024, "100MiB": 100 << 20, "2 GB": 2e9, "1GiB": 1 << 30, "0": 0,
	} {
		f, err := config.Parse([]byte(valid("log:", "  audit_file:", "    path: a.log", "    max_size: "+in)), "kes.yml", schema)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if f.Log.AuditFile.MaxSize != want {
			t.Errorf("%s: MaxSize %d, want %d", in, f.Log.AuditFile.MaxSize, want)
		}
	}
}

func TestLogSinkErrors(t *testing.T) {
	runErrorTests(t, []errorTest{
		{"stdout", valid("log:", "  audit_stdout: maybe"), 10,
			"kesconf: invalid value for 'log.audit_stdout': expected on or off, found 'maybe'", nil},
		{"file-no-path", valid("log:", "  audit_file:", "    max_size: 1MiB"), 10, "kesconf: log.audit_file: no path", nil},
		{"file-size", valid("log:", "  audit_file:", "    path: a.log", "    max_size: 10 furlongs"), 12,
			"kesconf: invalid value for 'log.audit_file.max_size': expected a size such as 100MiB, found '10 furlongs'", nil},
		{"file-size-negative", valid("log:", "  audit_file:", "    path: a.log", "    max_size: -1"), 12,
			"kesconf: invalid value for 'log.audit_file.max_size': expected a size such as 100MiB, found '-1'", nil},
		{"file-size-overflow", valid("log:", "  audit_file:", "    path: a.log", "    max_size: 9999999999GiB"), 12,
			"kesconf: invalid value for 'log.audit_file.max_size': expected a size such as 100MiB, found '9999999999GiB'", nil},
		{"file-backups", valid("log:", "  audit_file:", "    path: a.log", "    max_backups: -2"), 12,
			"kesconf: invalid value for 'log.audit_file.max_backups': expected a non-negative integer, found '-2'", nil},
		{"file-age", valid("log:", "  audit_file:", "    path: a.log", "    max_age: -1h"), 12,
			"kesconf: invalid log.audit_file.max_age '-1h0m0s'", nil},
		{"file-rotate", valid("log:", "  audit_file:", "    path: a.log", "    rotate_every: 1"), 12,
			"kesconf: invalid value for 'log.audit_file.rotate_every': expected a duration such as 15s or 5m, found '1'", nil},
		{"file-unknown", valid("log:", "  audit_file:", "    path: a.log", "    compress: true"), 12,
			"kesconf: unknown key 'log.audit_file.compress'", nil},
		{"syslog-no-network", valid("log:", "  audit_syslog:", "    address: 127.0.0.1:514"), 10,
			"kesconf: log.audit_syslog: no network (udp, tcp, unix or unixgram)", nil},
		{"syslog-network", valid("log:", "  audit_syslog:", "    network: tls", "    address: 127.0.0.1:514"), 11,
			"kesconf: invalid log.audit_syslog.network 'tls': want udp, tcp, unix or unixgram", nil},
		{"syslog-no-address", valid("log:", "  audit_syslog:", "    network: udp"), 10, "kesconf: log.audit_syslog: no address", nil},
		{"syslog-facility", valid("log:", "  audit_syslog:", "    network: udp", "    address: 127.0.0.1:514", "    facility: local9"), 13,
			"kesconf: invalid log.audit_syslog.facility 'local9'", nil},
		{"syslog-app-name", valid("log:", "  audit_syslog:", "    network: udp", "    address: 127.0.0.1:514", "    app_name: k e s"), 13,
			"kesconf: invalid log.audit_syslog: log: audit syslog: invalid app name 'k e s': want 1 to 48 printable ASCII characters", nil},
		{"syslog-unknown", valid("log:", "  audit_syslog:", "    network: udp", "    tls: true"), 12,
			"kesconf: unknown key 'log.audit_syslog.tls'", nil},
	})
}
