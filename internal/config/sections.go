package config

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (d *decoder) cache(c *Cache) field {
	return d.sub(map[string]field{
		"expiry": d.sub(map[string]field{
			"any":     d.nonNegative(&c.Any, "kesconf: invalid cache expiry '%v'"),
			"unused":  d.nonNegative(&c.Unused, "kesconf: invalid cache unused expiry '%v'"),
			"offline": d.nonNegative(&c.Offline, "kesconf: invalid offline cache expiry '%v'"),
		}),
	})
}

// nonNegative returns a duration field that rejects negative values with
// the message format (one %v verb for the duration).
func (d *decoder) nonNegative(dst *time.Duration, format string) field {
	return func(path string, k, v *yaml.Node) error {
		if err := d.duration(dst)(path, k, v); err != nil {
			return err
		}
		if *dst < 0 {
			return d.failf(v, format, *dst)
		}
		return nil
	}
}

func (d *decoder) log(l *Log) field {
	return d.sub(map[string]field{
		"error": d.level(&l.Error),
		"audit": d.level(&l.Audit),
	})
}

// level returns a field that decodes a log level (config.md §8).
func (d *decoder) level(dst *slog.Level) field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		l, ok := parseLevel(s)
		if !ok {
			return d.failf(v, "kesconf: invalid log level '%s' for '%s'", s, path)
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

// routes are the exact route paths of api.md §3 that the api section may
// configure. Prefix routes end with '/'.
var routes = map[string]bool{
	"/version": true, "/v1/ready": true, "/v1/status": true, "/v1/metrics": true, "/v1/api": true,
	"/v1/key/create/": true, "/v1/key/import/": true, "/v1/key/describe/": true, "/v1/key/list/": true,
	"/v1/key/delete/": true, "/v1/key/generate/": true, "/v1/key/encrypt/": true, "/v1/key/decrypt/": true,
	"/v1/key/hmac/": true, "/v1/policy/describe/": true, "/v1/policy/read/": true, "/v1/policy/list/": true,
	"/v1/identity/describe/": true, "/v1/identity/self/describe": true, "/v1/identity/list/": true,
	"/v1/log/error": true, "/v1/log/audit": true,
}

// api decodes the api section. Route keys are never env-expanded; keys that
// name no route are validated, then dropped with a notice.
func (d *decoder) api(dst *map[string]RouteConfig) field {
	return func(path string, _, v *yaml.Node) error {
		if v = resolve(v); isNull(v) {
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return d.fail(v, &TypeError{Key: path, Want: "a mapping", Got: kindName(v)})
		}
		return d.entries(v, "", func(_ string, k, v *yaml.Node) error {
			route := k.Value
			var rc RouteConfig
			err := d.mapping(v, path+"."+route, map[string]field{
				"skip_auth": d.boolean(&rc.SkipAuth),
				"timeout": func(p string, k, tv *yaml.Node) error {
					if err := d.duration(&rc.Timeout)(p, k, tv); err != nil {
						return err
					}
					if rc.Timeout < 0 {
						return d.failf(tv, "kesconf: invalid timeout '%d' for API '%s'", int64(rc.Timeout), route)
					}
					return nil
				},
			})
			if err != nil {
				return err
			}
			if !routes[route] {
				d.notice(k, "api route '%s' does not exist and is ignored", route)
				return nil
			}
			if *dst == nil {
				*dst = make(map[string]RouteConfig)
			}
			(*dst)[route] = rc
			return nil
		})
	}
}
