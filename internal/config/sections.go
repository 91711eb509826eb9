package config

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/openkes/kes/internal/apiroute"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/ratelimit"
	"go.yaml.in/yaml/v3"
)

func (d *Decoder) cache(c *cache.Config) Field {
	return d.Sub(map[string]Field{
		"expiry": d.Sub(map[string]Field{
			"any":     d.NonNegative(&c.Any, "kesconf: invalid cache expiry '%v'"),
			"unused":  d.NonNegative(&c.Unused, "kesconf: invalid cache unused expiry '%v'"),
			"offline": d.NonNegative(&c.Offline, "kesconf: invalid offline cache expiry '%v'"),
		}),
	})
}

func (d *Decoder) log(l *Log) Field {
	return d.Sub(map[string]Field{
		"error":        d.level(&l.Error),
		"audit":        d.level(&l.Audit),
		"audit_stdout": d.auditStdout(&l.AuditStdoutOff),
		"audit_file":   d.auditFile(&l.AuditFile),
		"audit_syslog": d.auditSyslog(&l.AuditSyslog),
	})
}

// level returns a field that decodes a log level (config.md §8).
func (d *Decoder) level(dst *slog.Level) Field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		l, ok := parseLevel(s)
		if !ok {
			return d.Failf(v, "kesconf: invalid log level '%s' for '%s'", s, path)
		}
		*dst = l
		return nil
	}
}

// parseLevel parses "", on, off, DEBUG, INFO, WARN, ERROR, LEVEL+n, LEVEL-n
// or an integer, case-insensitively.
func parseLevel(s string) (slog.Level, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "on":
		return slog.LevelInfo, true
	case "off":
		return LevelOff, true
	}
	if n, err := strconv.Atoi(s); err == nil {
		return slog.Level(n), true
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, false
	}
	return l, true
}

// api decodes the api section. Route keys are never env-expanded; keys that
// name no route are validated, then dropped with a notice. The key
// rate_limit, which no route path can be (they start with '/'), is the
// default rate limit of identities (an OpenKES extension).
func (d *Decoder) api(dst *map[string]apiroute.Config, limit **ratelimit.Limit) Field {
	return func(path string, _, v *yaml.Node) error {
		if v = resolve(v); isNull(v) {
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return d.Fail(v, &TypeError{Key: path, Want: "a mapping", Got: kindName(v)})
		}
		return d.entries(v, "", func(_ string, k, v *yaml.Node) error {
			route := k.Value
			if route == "rate_limit" {
				var off bool
				return d.rateLimit(limit, &off)(path+"."+route, k, v)
			}
			var rc apiroute.Config
			err := d.Mapping(v, path+"."+route, map[string]Field{
				"skip_auth": d.Boolean(&rc.SkipAuth),
				"timeout": func(p string, k, tv *yaml.Node) error {
					if err := d.Duration(&rc.Timeout)(p, k, tv); err != nil {
						return err
					}
					if rc.Timeout < 0 {
						return d.Failf(tv, "kesconf: invalid timeout '%d' for API '%s'", int64(rc.Timeout), route)
					}
					return nil
				},
			})
			if err != nil {
				return err
			}
			if !slices.Contains(d.schema.Routes, route) {
				d.notice(k, "api route '%s' does not exist and is ignored", route)
				return nil
			}
			if *dst == nil {
				*dst = make(map[string]apiroute.Config)
			}
			(*dst)[route] = rc
			return nil
		})
	}
}
