package config

import (
	"errors"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
)

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
		r.Policies = make(map[string]auth.PolicyConfig)
		return d.entries(v, path, func(p string, k, v *yaml.Node) error {
			var pc auth.PolicyConfig
			var paths []string
			err := d.Mapping(v, p, map[string]Field{
				"allow": d.StrList(&pc.Allow, false),
				"deny":  d.StrList(&pc.Deny, false),
				"paths": d.StrList(&paths, false), // ≤ v0.14: same as allow
				// OpenKES extension: the limit of each identity of the policy.
				"rate_limit": d.policyRateLimit(r, k.Value),
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

// validatePolicies applies auth's rules of configured policies
// (identity-and-auth.md §4.2) in file order, so the reported policy is the
// later of two, and adds the line of the name or identity at fault.
func (d *Decoder) validatePolicies(r *rawFile) error {
	pn := r.policyNodes
	err := auth.CheckPolicies(r.Admin, r.TLS.Proxy.Identities, pn.order, r.Policies)
	var perr *auth.PolicyError
	if !errors.As(err, &perr) {
		return err
	}
	at := pn.names[perr.Policy]
	if perr.Index >= 0 {
		at = pn.ids[perr.Policy][perr.Index]
	}
	return d.Fail(at, err)
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
