package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree. Every error it returns is an [*Error]
// carrying the file name and the line of the offending node.
type decoder struct {
	file    string
	lookup  func(string) (string, bool) // environment; os.LookupEnv
	notices []Notice
	budget  int // values left to visit; bounds alias amplification
}

// errTooComplex is returned when aliases make the document expand to far
// more values than its size allows.
var errTooComplex = errors.New("kesconf: invalid YAML: too many values (aliases expand too much)")

// visit charges n values against the budget.
func (d *decoder) visit(at *yaml.Node, n int) error {
	if d.budget -= n; d.budget < 0 {
		return d.fail(at, errTooComplex)
	}
	return nil
}

// field decodes the value of one mapping key. path is the dotted key path
// (e.g. "tls.key"), key the key node and val its value node.
type field func(path string, key, val *yaml.Node) error

// fail returns err positioned at n.
func (d *decoder) fail(n *yaml.Node, err error) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Err: err}
}

// failf returns a formatted error positioned at n.
func (d *decoder) failf(n *yaml.Node, format string, args ...any) error {
	return d.fail(n, fmt.Errorf(format, args...))
}

// notice records an accepted but ignored key.
func (d *decoder) notice(n *yaml.Node, format string, args ...any) {
	d.notices = append(d.notices, Notice{File: d.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit YAML null.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	default:
		return "a document"
	}
}

// mapping calls fields[key] for each entry of the mapping n. A null n is an
// empty mapping. Unknown and duplicate keys are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field) error {
	if n = resolve(n); isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return d.fail(n, &TypeError{Key: path, Want: "a mapping", Got: kindName(n)})
	}
	return d.entries(n, path, func(p string, k, v *yaml.Node) error {
		f, ok := fields[k.Value]
		if !ok {
			return d.fail(k, &UnknownKeyError{Key: p})
		}
		return f(p, k, v)
	})
}

// entries calls fn for every key/value pair of the mapping n, rejecting
// non-scalar and duplicate keys.
func (d *decoder) entries(n *yaml.Node, path string, fn field) error {
	if err := d.visit(n, len(n.Content)/2); err != nil {
		return err
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return d.fail(n.Content[i], &TypeError{Key: path, Want: "a scalar key", Got: kindName(n.Content[i])})
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if first, ok := seen[k.Value]; ok {
			return d.fail(k, &DuplicateKeyError{Key: p, FirstLine: first})
		}
		seen[k.Value] = k.Line
		if err := fn(p, k, v); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns the text of the scalar n ("" for null), expanding a
// whole-value "${NAME}" reference if expand is set.
func (d *decoder) scalar(n *yaml.Node, path string, expand bool) (string, error) {
	if n = resolve(n); isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", d.fail(n, &TypeError{Key: path, Want: "a scalar", Got: kindName(n)})
	}
	if !expand {
		return n.Value, nil
	}
	return d.expand(n)
}

// expand implements config.md §2: a value whose trimmed text is exactly
// "${NAME}" is replaced by the variable's value; anything else is literal.
func (d *decoder) expand(n *yaml.Node) (string, error) {
	s := strings.TrimSpace(n.Value)
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") {
		return n.Value, nil
	}
	name := strings.TrimSpace(s[2 : len(s)-1])
	v, ok := d.lookup(name)
	if !ok {
		return "", d.fail(n, &EnvError{Name: name, Line: n.Line})
	}
	return v, nil
}

// str returns a field that stores an env-expanded string in dst.
func (d *decoder) str(dst *string) field {
	return func(path string, _, v *yaml.Node) (err error) {
		*dst, err = d.scalar(v, path, true)
		return err
	}
}

// boolean returns a field that stores a YAML 1.2 boolean in dst.
func (d *decoder) boolean(dst *bool) field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		switch s {
		case "true", "True", "TRUE":
			*dst = true
		case "false", "False", "FALSE", "":
			*dst = false
		default:
			return d.fail(v, &TypeError{Key: path, Want: "true or false", Got: fmt.Sprintf("'%s'", s)})
		}
		return nil
	}
}

// duration returns a field that stores a Go duration string in dst. An
// empty value is zero; a bare integer other than 0 is an error.
func (d *decoder) duration(dst *time.Duration) field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil {
			return err
		}
		if s = strings.TrimSpace(s); s == "" {
			*dst = 0
			return nil
		}
		t, err := time.ParseDuration(s)
		if err != nil {
			return d.fail(v, &TypeError{Key: path, Want: "a duration such as 15s or 5m", Got: fmt.Sprintf("'%s'", s)})
		}
		*dst = t
		return nil
	}
}

// list returns the items of the sequence n as strings. A null n is empty.
func (d *decoder) list(n *yaml.Node, path string, expand bool) ([]string, error) {
	if n = resolve(n); isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.fail(n, &TypeError{Key: path, Want: "a sequence", Got: kindName(n)})
	}
	if err := d.visit(n, len(n.Content)); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		s, err := d.scalar(item, path, expand)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// strList returns a field that stores a list of strings in dst.
func (d *decoder) strList(dst *[]string, expand bool) field {
	return func(path string, _, v *yaml.Node) (err error) {
		*dst, err = d.list(v, path, expand)
		return err
	}
}

// ignore returns a field for a legacy key that is accepted and ignored.
func (d *decoder) ignore() field {
	return func(path string, k, _ *yaml.Node) error {
		d.notice(k, "legacy key '%s' is ignored", path)
		return nil
	}
}

// sub returns a field that decodes a nested mapping.
func (d *decoder) sub(fields map[string]field) field {
	return func(path string, _, v *yaml.Node) error { return d.mapping(v, path, fields) }
}

// readFile reads name, refusing files larger than MaxFileSize.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Err: ErrFileTooLarge}
	}
	return data, nil
}
