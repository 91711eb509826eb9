// Package config reads the KES server configuration file (spec config.md)
// into a validated [File].
//
// The YAML is walked as a yaml.Node tree so that every error names the file
// and line ("<file>:<line>: <message>"), unlike upstream every unknown or
// mistyped key is an error, and the legacy keys upstream accepted keep
// working (config.md §12).
//
// The package owns the file, not the facts in it: the keystore section is
// decoded by the table of key stores the caller passes in a [Schema]
// (internal/keystore/stores), straight into each store's own Config type,
// with the exported [Decoder] that adds file:line to every error.
//
// This package must not import internal/api, internal/metrics, a key store
// or a vendor SDK: the server imports it, not the other way round
// (TestDeps in the module root checks it).
package config

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/apiroute"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/keystore/cache"
	"github.com/openkes/kes/internal/log"
	"github.com/openkes/kes/internal/ratelimit"
)

// DefaultAddress is the listen address [Parse] sets when the file has
// none (config.md §3). Other defaults belong to the packages whose config
// the file fills: the cache's and the key stores' apply to the fields the
// file leaves empty.
const DefaultAddress = "0.0.0.0:7373"

// MaxFileSize is the largest configuration file [ReadFile] and [Parse]
// accept, in bytes.
const MaxFileSize = 8 << 20

// File is a validated server configuration. Parse returns it with defaults
// applied; it must not be modified once handed to the server (a reload
// parses a new File).
type File struct {
	// Address is the listen address "[ip]:port". Parse sets DefaultAddress
	// when the file has none; the --addr flag overrides it.
	Address string

	// Admin is the admin identity. Never empty after Parse. A value that is
	// not a hex identity disables admin access (identity-and-auth.md §5).
	Admin kes.Identity

	// TLS is the server's TLS configuration.
	TLS TLS

	// Cache holds the key cache intervals (config.md §5): expiry.any,
	// expiry.unused and expiry.offline. Zero means the cache package's
	// default; never negative after Parse.
	Cache cache.Config

	// Log holds the minimum levels of the error and audit logs.
	Log Log

	// API holds per-route settings keyed by the exact route path
	// ("/v1/status", "/v1/key/list/"). Nil or a missing route means the
	// route table's defaults. Keys that name no route of Schema.Routes
	// are not in it; see Notices.
	API map[string]apiroute.Config

	// Policies maps policy names to policies. Nil means no policies: only
	// the admin is authorized.
	Policies map[string]auth.PolicyConfig

	// RateLimits holds the request rate limits (an OpenKES extension:
	// api.rate_limit, admin.rate_limit and policy.<name>.rate_limit). The
	// zero value limits nobody.
	RateLimits ratelimit.Config

	// Keys lists the predefined key names, created at start and reload if
	// missing, in file order. Nil means none.
	Keys []string

	// KeyStore is the configured keystore backend. Never nil after Parse.
	KeyStore KeyStore

	// KeyDeletion says how keys are deleted: soft deletion's retention
	// and the protected keys (an OpenKES extension).
	KeyDeletion KeyDeletion

	// HSM is the hsm section, an OpenKES extension: the layer that wraps
	// every record of KeyStore with a key in an HSM. Nil means none.
	HSM Wrapper

	// Notices lists keys that Parse accepted but ignores (legacy keys,
	// unknown API routes), in file order, so the server can warn about
	// them. Nil means none.
	Notices []Notice
}

// Notice is a configuration key that is accepted but has no effect.
type Notice struct {
	File string
	Line int
	Msg  string // e.g. "api route '/v1/foo' does not exist and is ignored"
}

func (n Notice) String() string { return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Msg) }

// Log holds the minimum log levels (config.md §8) and the audit sinks
// (OpenKES extensions, docs/audit-sinks.md).
type Log struct {
	// Error is the minimum level of error-log records. Zero is INFO.
	Error slog.Level

	// Audit is the minimum level of audit records (which are INFO). Zero
	// is INFO, so audit records are printed; LevelOff disables them.
	Audit slog.Level

	// AuditStdoutOff keeps audit records off stdout (log.audit_stdout:
	// off); the sinks and the live stream still get them. False prints
	// them, as upstream does.
	AuditStdoutOff bool

	// AuditFile is the audit file sink (log.audit_file); nil means none.
	// Its Path is never empty.
	AuditFile *log.FileConfig

	// AuditSyslog is the audit syslog sink (log.audit_syslog); nil means
	// none. It passes [log.SyslogConfig.Check].
	AuditSyslog *log.SyslogConfig
}

// LevelOff is the level "off" maps to: above every record the server emits.
const LevelOff = slog.LevelError + 1

// ReadFile reads and parses the configuration file filename. A file that
// cannot be read yields the *fs.PathError of os.Open; a file larger than
// MaxFileSize an [*Error] matching ErrFileTooLarge; otherwise errors are as
// for [Parse].
func ReadFile(filename string, schema *Schema) (*File, error) {
	data, err := readFile(filename)
	if err != nil {
		return nil, err
	}
	return Parse(data, filename, schema)
}

// Schema is what a configuration file may name that this package does not
// own. A nil *Schema is the zero Schema.
type Schema struct {
	// KeyStores lists the key stores the keystore section may name
	// (internal/keystore/stores.All). Nil means none: every keystore
	// section is an unknown key.
	KeyStores []Backend

	// Routes lists the route paths the api section may configure: the
	// server's route table (api.Paths). Settings of any other path are
	// validated, then dropped with a [Notice]. Nil means none.
	Routes []string

	// HSM decodes and validates the top-level hsm section
	// (internal/keystore/stores.DecodeHSM), failing through d as
	// [Backend.Decode] does. Nil means the file may not have one: the
	// section is an unknown key.
	HSM func(d *Decoder, path string, key, val *yaml.Node) (Wrapper, error)
}

// Parse parses and validates the configuration data; filename is used in
// error messages only. "${NAME}" references are resolved with
// os.LookupEnv. Every error is an [*Error] holding the line of the
// offending key or value. schema says which key stores and routes the file
// may name.
func Parse(data []byte, filename string, schema *Schema) (*File, error) {
	if schema == nil {
		schema = new(Schema)
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: filename, Err: ErrFileTooLarge}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(filename, err)
	}
	// Without aliases a document cannot hold more values than bytes.
	d := &Decoder{file: filename, lookup: os.LookupEnv, budget: 2*len(data) + 1024, schema: schema}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	f, err := d.decodeFile(root)
	if err != nil {
		return nil, err
	}
	f.Notices = d.notices
	return f, nil
}

// yamlError turns a YAML syntax error ("yaml: line 3: ...") into an [*Error].
func yamlError(filename string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, tail
			}
		}
	}
	return &Error{File: filename, Line: line, Err: fmt.Errorf("kesconf: invalid YAML: %s", msg)}
}

// setDefaults applies the documented defaults to the fields the file
// leaves out.
func setDefaults(r *rawFile) {
	if r.Address == "" {
		r.Address = DefaultAddress
	}
	if !r.retentionSet {
		r.KeyDeletion.Retention = DefaultRetention
	}
}

// rawFile holds the decoded sections before cross-section validation.
type rawFile struct {
	File
	root         *yaml.Node // for errors about missing sections
	adminNode    *yaml.Node // line of admin.identity / root
	tlsNode      *yaml.Node
	proxyNodes   []*yaml.Node // one per TLS.Proxy.Identities entry
	policyNodes  policyNodes
	keystores    []keystoreEntry
	keystoreNode *yaml.Node // first keystore (or legacy keys) key
	retentionSet bool       // key_deletion.retention is in the file
}

// decodeFile decodes the document root and validates it.
func (d *Decoder) decodeFile(root *yaml.Node) (*File, error) {
	if root = resolve(root); root == nil || root.Kind == 0 {
		root = &yaml.Node{Kind: yaml.MappingNode, Line: 1}
	}
	if root.Line == 0 {
		root.Line = 1
	}
	r := &rawFile{root: root, tlsNode: root}
	var rootID, adminID string
	var rootNode *yaml.Node
	fields := map[string]Field{
		"version": d.version,
		"address": d.address(&r.Address),
		"admin": func(p string, k, v *yaml.Node) error {
			r.adminNode = k
			var off bool
			return d.Mapping(v, p, map[string]Field{
				"identity": func(p string, k, v *yaml.Node) error {
					r.adminNode = k
					return d.Str(&adminID)(p, k, v)
				},
				"rate_limit": d.rateLimit(&r.RateLimits.Admin, &off),
			})
		},
		"root": func(p string, k, v *yaml.Node) error {
			rootNode = k
			return d.Str(&rootID)(p, k, v)
		},
		"tls":      d.tls(r),
		"cache":    d.cache(&r.Cache),
		"log":      d.log(&r.Log),
		"api":      d.api(&r.API, &r.RateLimits.Default),
		"policy":   d.policies(r),
		"keys":     d.keys(r),
		"keystore": d.keystore(r),

		"key_deletion": d.keyDeletion(r),
	}
	if d.schema.HSM != nil {
		fields["hsm"] = func(p string, k, v *yaml.Node) (err error) {
			r.HSM, err = d.schema.HSM(d, p, k, v)
			return err
		}
	}
	err := d.Mapping(root, "", fields)
	if err != nil {
		return nil, err
	}
	setDefaults(r)
	switch {
	case rootNode != nil && r.adminNode != nil:
		return nil, d.Failf(rootNode, "kesconf: legacy key 'root' and 'admin.identity' must not both be specified")
	case rootNode != nil:
		r.adminNode, adminID = rootNode, rootID
	}
	r.Admin = kes.Identity(adminID)
	return d.validate(r)
}

// validate checks the rules that span sections, in a fixed order.
func (d *Decoder) validate(r *rawFile) (*File, error) {
	if r.Admin == "" {
		n := r.adminNode
		if n == nil {
			n = r.root
		}
		return nil, d.Fail(n, ErrNoAdmin)
	}
	if err := d.validateTLS(r); err != nil {
		return nil, err
	}
	if err := d.validatePolicies(r); err != nil {
		return nil, err
	}
	ks, err := d.validateKeyStore(r)
	if err != nil {
		return nil, err
	}
	r.KeyStore = ks
	return &r.File, nil
}

// version accepts only "v1" or an empty value (never env-expanded).
func (d *Decoder) version(path string, _, v *yaml.Node) error {
	s, err := d.scalar(v, path, false)
	if err != nil {
		return err
	}
	if s != "" && s != "v1" {
		return d.Failf(v, "edge: invalid server config version '%s'", s)
	}
	return nil
}

// address checks "[ip]:port" with an empty or IP-literal host.
func (d *Decoder) address(dst *string) Field {
	return func(path string, _, v *yaml.Node) error {
		s, err := d.scalar(v, path, true)
		if err != nil || s == "" {
			return err
		}
		host, port, err := net.SplitHostPort(s)
		if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
			return d.Failf(v, "kesconf: invalid address '%s': missing or invalid port", s)
		}
		if host != "" && net.ParseIP(host) == nil {
			return d.Failf(v, "'%s' is not a valid IP address", host)
		}
		*dst = s
		return nil
	}
}
