package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/log"
)

// The audit sink keys are OpenKES extensions (docs/audit-sinks.md):
//
//	log:
//	  audit_stdout: off           # on (default) or off: the console line
//	  audit_file:                 # JSON lines, rotated
//	    path: /var/log/kes/audit.log
//	    max_size: 100MiB
//	    rotate_every: 24h
//	    max_backups: 30
//	    max_age: 720h
//	  audit_syslog:               # RFC 5424
//	    network: tcp              # udp, tcp, unix or unixgram
//	    address: 127.0.0.1:514
//	    facility: local0
//	    app_name: kes
//	    hostname: kes-1

// auditStdout decodes log.audit_stdout: on, off, true or false.
func (d *Decoder) auditStdout(off *bool) Field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "", "on", "true":
			*off = false
		case "off", "false":
			*off = true
		default:
			return d.Fail(v, &TypeError{Key: path, Want: "on or off", Got: fmt.Sprintf("'%s'", s)})
		}
		return nil
	}
}

// auditFile decodes log.audit_file.
func (d *Decoder) auditFile(dst **log.FileConfig) Field {
	return func(path string, k, v *yaml.Node) error {
		if isNull(v) {
			return nil
		}
		var c log.FileConfig
		err := d.Mapping(v, path, map[string]Field{
			"path":         d.Str(&c.Path),
			"max_size":     d.size(&c.MaxSize),
			"rotate_every": d.NonNegative(&c.RotateEvery, "kesconf: invalid log.audit_file.rotate_every '%v'"),
			"max_backups":  d.count(&c.MaxBackups),
			"max_age":      d.NonNegative(&c.MaxAge, "kesconf: invalid log.audit_file.max_age '%v'"),
		})
		if err != nil {
			return err
		}
		if c.Path == "" {
			return d.Failf(k, "kesconf: %s: no path", path)
		}
		*dst = &c
		return nil
	}
}

// auditSyslog decodes log.audit_syslog.
func (d *Decoder) auditSyslog(dst **log.SyslogConfig) Field {
	return func(path string, k, v *yaml.Node) error {
		if isNull(v) {
			return nil
		}
		var c log.SyslogConfig
		nodes := map[string]*yaml.Node{}
		str := func(dst *string) Field {
			return func(p string, k, v *yaml.Node) error {
				nodes[k.Value] = v
				return d.Str(dst)(p, k, v)
			}
		}
		err := d.Mapping(v, path, map[string]Field{
			"network":  str(&c.Network),
			"address":  str(&c.Address),
			"facility": str(&c.Facility),
			"app_name": str(&c.AppName),
			"hostname": str(&c.Hostname),
		})
		if err != nil {
			return err
		}
		switch c.Network {
		case "udp", "tcp", "unix", "unixgram":
		case "":
			return d.Failf(k, "kesconf: %s: no network (udp, tcp, unix or unixgram)", path)
		default:
			return d.Failf(nodes["network"], "kesconf: invalid %s.network '%s': want udp, tcp, unix or unixgram", path, c.Network)
		}
		if c.Address == "" {
			return d.Failf(k, "kesconf: %s: no address", path)
		}
		if _, ok := log.ParseFacility(c.Facility); !ok {
			return d.Failf(nodes["facility"], "kesconf: invalid %s.facility '%s'", path, c.Facility)
		}
		if err := c.Check(); err != nil {
			n := nodes["app_name"]
			if n == nil {
				n = nodes["hostname"]
			}
			return d.Failf(n, "kesconf: invalid %s: %v", path, err)
		}
		*dst = &c
		return nil
	}
}

// size decodes a size in bytes: an integer, optionally followed by one
// of the units KB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024).
// Zero is allowed; negative sizes are not.
func (d *Decoder) size(dst *int64) Field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		n, ok := parseSize(strings.TrimSpace(s))
		if !ok {
			return d.Fail(v, &TypeError{Key: path, Want: "a size such as 100MiB", Got: fmt.Sprintf("'%s'", s)})
		}
		*dst = n
		return nil
	}
}

func parseSize(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}

// count decodes a non-negative integer.
func (d *Decoder) count(dst *int) Field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		if s = strings.TrimSpace(s); s == "" {
			*dst = 0
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return d.Fail(v, &TypeError{Key: path, Want: "a non-negative integer", Got: fmt.Sprintf("'%s'", s)})
		}
		*dst = n
		return nil
	}
}
