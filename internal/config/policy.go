package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/names"
)

// PolicyConfig is one policy of the policy section (config.md §7,
// identity-and-auth.md §4).
type PolicyConfig struct {
	// Allow lists the path patterns the policy grants, in file order
	// (legacy "paths" entries appended). Nil grants nothing.
	Allow []string

	// Deny lists the path patterns the policy refuses; deny wins over
	// allow. Nil refuses nothing beyond what Allow does not grant.
	Deny []string

	// Identities are the identities assigned to the policy. Each appears
	// in at most one policy and is neither the admin nor a TLS proxy. Nil
	// means none.
	Identities []kes.Identity
}

// policyNodes keeps the positions needed to report validation errors.
type policyNodes struct {
	order []string                // policy names in file order
	names map[string]*yaml.Node   // policy name -> key node
	ids   map[string][]*yaml.Node // policy name -> identity item nodes
}

// policies decodes the policy section. Policy names and allow/deny patterns
// are never env-expanded; identities are.
func (d *Decoder) policies(r *rawFile) Field {
	return func(path string, _, v *yaml.Node) error {
		if v = resolve(v); isNull(v) {
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return d.Fail(v, &TypeError{Key: path, Want: "a mapping", Got: kindName(v)})
		}
		pn := &r.policyNodes
		pn.names, pn.ids = make(map[string]*yaml.Node), make(map[string][]*yaml.Node)
		r.Policies = make(map[string]PolicyConfig)
		return d.entries(v, path, func(p string, k, v *yaml.Node) error {
			var pc PolicyConfig
			var paths []string
			err := d.Mapping(v, p, map[string]Field{
				"allow": d.StrList(&pc.Allow, false),
				"deny":  d.StrList(&pc.Deny, false),
				"paths": d.StrList(&paths, false), // ≤ v0.14: same as allow
				"identities": func(p string, _, v *yaml.Node) error {
					ids, err := d.List(v, p, true)
					if err != nil {
						return err
					}
					items := resolve(v)
					for i, id := range ids {
						pc.Identities = append(pc.Identities, kes.Identity(id))
						pn.ids[k.Value] = append(pn.ids[k.Value], items.Content[i])
					}
					return nil
				},
			})
			if err != nil {
				return err
			}
			pc.Allow = append(pc.Allow, paths...)
			pn.order = append(pn.order, k.Value)
			pn.names[k.Value] = k
			r.Policies[k.Value] = pc
			return nil
		})
	}
}

// validatePolicies checks names and the identity assignment rules of
// identity-and-auth.md §4.2 in file order, so the reported policy is the
// later of two.
func (d *Decoder) validatePolicies(r *rawFile) error {
	proxies := make(map[kes.Identity]bool, len(r.TLS.Proxy.Identities))
	for _, id := range r.TLS.Proxy.Identities {
		proxies[id] = true
	}
	assigned := make(map[kes.Identity]string)
	pn := r.policyNodes
	for _, name := range pn.order {
		if !names.Valid(name) {
			return d.Failf(pn.names[name], "kes: policy name '%s' is empty, too long or contains invalid characters", name)
		}
		for i, id := range r.Policies[name].Identities {
			n := pn.ids[name][i]
			switch {
			case !names.Valid(id.String()):
				return d.Failf(n, "kes: identity '%s' is empty, too long or contains invalid characters", id)
			case id == r.Admin:
				return d.Failf(n, "kesconf: invalid policy '%s': identity '%s' is already admin", name, id)
			case proxies[id]:
				return d.Failf(n, "kesconf: invalid policy '%s': identity '%s' is already a TLS proxy", name, id)
			}
			if _, ok := assigned[id]; ok {
				return d.Fail(n, fmt.Errorf("kes: cannot assign policy '%s' to '%s': identity already has a policy", name, id))
			}
			assigned[id] = name
		}
	}
	return nil
}

// keys decodes the keys section: a list of {name} (predefined keys), or in
// files of v0.13 and before a mapping holding the keystore.
func (d *Decoder) keys(r *rawFile) Field {
	return func(path string, k, v *yaml.Node) error {
		if v = resolve(v); v != nil && v.Kind == yaml.MappingNode {
			return d.keystore(r)(path, k, v)
		}
		if isNull(v) {
			return nil
		}
		if v.Kind != yaml.SequenceNode {
			return d.Fail(v, &TypeError{Key: path, Want: "a sequence", Got: kindName(v)})
		}
		seen := make(map[string]bool, len(v.Content))
		for _, item := range v.Content {
			var name string
			if err := d.Mapping(item, path+"[]", map[string]Field{"name": d.Str(&name)}); err != nil {
				return err
			}
			if name == "" {
				return d.Failf(item, "kesconf: invalid key config: key name is empty")
			}
			if seen[name] {
				return d.Failf(item, "kesconf: invalid key config: key '%s' is defined multiple times", name)
			}
			seen[name] = true
			r.Keys = append(r.Keys, name)
		}
		return nil
	}
}
