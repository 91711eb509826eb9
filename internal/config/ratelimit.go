package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/ratelimit"
)

// rateLimit returns a field that decodes a rate_limit value (an OpenKES
// extension, docs/rate-limits.md) into *dst:
//
//	rate_limit:
//	  requests_per_second: 5   # > 0; fractions allowed (0.5 = one every 2 s)
//	  burst: 10                # ≥ 1; default: one second's worth, at least 1
//
// or the scalar "off", which leaves *dst nil and sets *off (a policy's
// "off" exempts it from api.rate_limit). A null value is no limit. Both
// numbers may be ${VAR} references.
func (d *Decoder) rateLimit(dst **ratelimit.Limit, off *bool) Field {
	return func(path string, k, v *yaml.Node) error {
		if v = resolve(v); isNull(v) {
			return nil
		}
		if v.Kind == yaml.ScalarNode {
			s, err := d.scalar(v, path, true)
			if err != nil {
				return err
			}
			if strings.TrimSpace(s) != "off" {
				return d.Fail(v, &TypeError{Key: path, Want: "a mapping or off", Got: fmt.Sprintf("'%s'", s)})
			}
			*dst, *off = nil, true
			return nil
		}
		var rate, burst string
		var rateNode, burstNode *yaml.Node
		err := d.Mapping(v, path, map[string]Field{
			"requests_per_second": func(p string, _, v *yaml.Node) (err error) {
				rateNode = v
				rate, err = d.scalar(v, p, true)
				return err
			},
			"burst": func(p string, _, v *yaml.Node) (err error) {
				burstNode = v
				burst, err = d.scalar(v, p, true)
				return err
			},
		})
		if err != nil {
			return err
		}
		if rateNode == nil {
			return d.Failf(k, "kesconf: invalid rate limit '%s': requests_per_second is missing", path)
		}
		var l ratelimit.Limit
		if l.PerSecond, err = strconv.ParseFloat(strings.TrimSpace(rate), 64); err != nil {
			return d.Fail(rateNode, &TypeError{Key: path + ".requests_per_second", Want: "a number", Got: fmt.Sprintf("'%s'", rate)})
		}
		if err := (ratelimit.Limit{PerSecond: l.PerSecond, Burst: 1}).Validate(); err != nil {
			return d.Failf(rateNode, "kesconf: invalid rate limit '%s': %v", path, err)
		}
		l.Burst = ratelimit.DefaultBurst(l.PerSecond)
		if burstNode != nil && strings.TrimSpace(burst) != "" {
			if l.Burst, err = strconv.Atoi(strings.TrimSpace(burst)); err != nil {
				return d.Fail(burstNode, &TypeError{Key: path + ".burst", Want: "an integer", Got: fmt.Sprintf("'%s'", burst)})
			}
			if err := l.Validate(); err != nil {
				return d.Failf(burstNode, "kesconf: invalid rate limit '%s': %v", path, err)
			}
		}
		*dst, *off = &l, false
		return nil
	}
}

// policyRateLimit returns the rate_limit field of policy name, which
// records the limit (nil for "off") in r.
func (d *Decoder) policyRateLimit(r *rawFile, name string) Field {
	var l *ratelimit.Limit
	var off bool
	decode := d.rateLimit(&l, &off)
	return func(path string, k, v *yaml.Node) error {
		if err := decode(path, k, v); err != nil {
			return err
		}
		if l == nil && !off {
			return nil
		}
		if r.RateLimits.Policies == nil {
			r.RateLimits.Policies = make(map[string]*ratelimit.Limit)
		}
		r.RateLimits.Policies[name] = l
		return nil
	}
}
