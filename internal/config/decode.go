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

// Decoder walks the yaml.Node tree of one configuration file. Every error it
// returns is an [*Error] carrying the file name and the line of the
// offending node, and every string it reads may be a "${NAME}" reference to
// an environment variable (config.md §2).
//
// [Parse] creates the Decoder and hands it to the decode function of the
// key store section ([Backend]), which describes its keys with [Field]s:
//
//	err := d.Mapping(val, path, map[string]config.Field{
//		"endpoint": d.Str(&c.Endpoint),
//		"tls":      d.Sub(map[string]config.Field{"ca": d.Str(&c.CAPath)}),
//	})
//
// A Decoder is used by one goroutine, for one file.
type Decoder struct {
	file    string
	lookup  func(string) (string, bool) // environment; os.LookupEnv
	notices []Notice
	budget  int // values left to visit; bounds alias amplification
	schema  *Schema
}

// errTooComplex is returned when aliases make the document expand to far
// more values than its size allows.
var errTooComplex = errors.New("kesconf: invalid YAML: too many values (aliases expand too much)")

// visit charges n values against the budget.
func (d *Decoder) visit(at *yaml.Node, n int) error {
	if d.budget -= n; d.budget < 0 {
		return d.Fail(at, errTooComplex)
	}
	return nil
}

// Field decodes the value of one mapping key. path is the dotted key path
// (e.g. "tls.key"), key the key node and val its value node. An error it
// returns should come from the [Decoder] ([Decoder.Fail]), so that it
// names the line.
type Field func(path string, key, val *yaml.Node) error

// Fail returns err as an [*Error] at the line of n (0 if n is nil). err
// keeps its text: the caller owns the message, the Decoder adds the place.
func (d *Decoder) Fail(n *yaml.Node, err error) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Err: err}
}

// Failf returns a formatted error at the line of n, as [Decoder.Fail].
func (d *Decoder) Failf(n *yaml.Node, format string, args ...any) error {
	return d.Fail(n, fmt.Errorf(format, args...))
}

// notice records an accepted but ignored key.
func (d *Decoder) notice(n *yaml.Node, format string, args ...any) {
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

// Mapping calls fields[key] for each entry of the mapping n, in file order.
// path is the dotted path of n, for messages. A null n is an empty mapping.
// Unknown and duplicate keys are errors.
func (d *Decoder) Mapping(n *yaml.Node, path string, fields map[string]Field) error {
	if n = resolve(n); isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return d.Fail(n, &TypeError{Key: path, Want: "a mapping", Got: kindName(n)})
	}
	return d.entries(n, path, func(p string, k, v *yaml.Node) error {
		f, ok := fields[k.Value]
		if !ok {
			return d.Fail(k, &UnknownKeyError{Key: p})
		}
		return f(p, k, v)
	})
}

// entries calls fn for every key/value pair of the mapping n, rejecting
// non-scalar and duplicate keys.
func (d *Decoder) entries(n *yaml.Node, path string, fn Field) error {
	if err := d.visit(n, len(n.Content)/2); err != nil {
		return err
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return d.Fail(n.Content[i], &TypeError{Key: path, Want: "a scalar key", Got: kindName(n.Content[i])})
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if first, ok := seen[k.Value]; ok {
			return d.Fail(k, &DuplicateKeyError{Key: p, FirstLine: first})
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
func (d *Decoder) scalar(n *yaml.Node, path string, expand bool) (string, error) {
	if n = resolve(n); isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", d.Fail(n, &TypeError{Key: path, Want: "a scalar", Got: kindName(n)})
	}
	if !expand {
		return n.Value, nil
	}
	return d.expand(n)
}

// expand implements config.md §2: a value whose trimmed text is exactly
// "${NAME}" is replaced by the variable's value; anything else is literal.
func (d *Decoder) expand(n *yaml.Node) (string, error) {
	s := strings.TrimSpace(n.Value)
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") {
		return n.Value, nil
	}
	name := strings.TrimSpace(s[2 : len(s)-1])
	v, ok := d.lookup(name)
	if !ok {
		return "", d.Fail(n, &EnvError{Name: name, Line: n.Line})
	}
	return v, nil
}

// Str returns a field that stores an env-expanded string in dst.
func (d *Decoder) Str(dst *string) Field {
	return func(path string, _, v *yaml.Node) (err error) {
		*dst, err = d.scalar(v, path, true)
		return err
	}
}

// Boolean returns a field that stores a YAML 1.2 boolean (true, false,
// null) in dst.
func (d *Decoder) Boolean(dst *bool) Field {
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
			return d.Fail(v, &TypeError{Key: path, Want: "true or false", Got: fmt.Sprintf("'%s'", s)})
		}
		return nil
	}
}

// Duration returns a field that stores a Go duration string ("15s") in
// dst. An empty value is zero; a bare integer other than 0 is an error.
func (d *Decoder) Duration(dst *time.Duration) Field {
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
			return d.Fail(v, &TypeError{Key: path, Want: "a duration such as 15s or 5m", Got: fmt.Sprintf("'%s'", s)})
		}
		*dst = t
		return nil
	}
}

// List returns the items of the sequence n as strings, env-expanded if
// expand is set. A null n is empty.
func (d *Decoder) List(n *yaml.Node, path string, expand bool) ([]string, error) {
	if n = resolve(n); isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.Fail(n, &TypeError{Key: path, Want: "a sequence", Got: kindName(n)})
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

// StrList returns a field that stores a sequence of strings in dst.
func (d *Decoder) StrList(dst *[]string, expand bool) Field {
	return func(path string, _, v *yaml.Node) (err error) {
		*dst, err = d.List(v, path, expand)
		return err
	}
}

// Ignore returns a field for a legacy key that is accepted and ignored; the
// file's [Notice]s say so.
func (d *Decoder) Ignore() Field {
	return func(path string, k, _ *yaml.Node) error {
		d.notice(k, "legacy key '%s' is ignored", path)
		return nil
	}
}

// Sub returns a field that decodes a nested mapping with fields.
func (d *Decoder) Sub(fields map[string]Field) Field {
	return func(path string, _, v *yaml.Node) error { return d.Mapping(v, path, fields) }
}

// NonNegative returns a [Decoder.Duration] field that rejects a negative
// value with the message format (one %v verb for the duration).
func (d *Decoder) NonNegative(dst *time.Duration, format string) Field {
	return func(path string, k, v *yaml.Node) error {
		if err := d.Duration(dst)(path, k, v); err != nil {
			return err
		}
		if *dst < 0 {
			return d.Failf(v, format, *dst)
		}
		return nil
	}
}

// Presence returns a field that decodes a nested mapping with fields and,
// if its value is not null, stores its key node in dst: the caller learns
// that the section is present and where, for a later error.
func (d *Decoder) Presence(dst **yaml.Node, fields map[string]Field) Field {
	return func(p string, k, v *yaml.Node) error {
		if !isNull(v) {
			*dst = k
		}
		return d.Mapping(v, p, fields)
	}
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
