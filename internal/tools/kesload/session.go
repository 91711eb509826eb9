package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Audit says which kes servers to start: one for each mode set, each
// with its audit log going elsewhere.
type Audit int

const (
	// AuditFile sends the server's stdout (the console audit log) to a
	// file in the work directory.
	AuditFile Audit = 1 << iota
	// AuditNull sends it to /dev/null.
	AuditNull
	// AuditOff switches the audit log off (log.audit: off).
	AuditOff
	// AuditSink writes it to an audit file sink (log.audit_file) in the
	// work directory, and not to stdout (log.audit_stdout: off).
	AuditSink
	// AuditSyslog sends it to a syslog sink over UDP (log.audit_syslog)
	// whose receiver, in kesload, discards it; not to stdout.
	AuditSyslog
	// AuditBoth starts two kes servers: AuditFile and AuditNull.
	AuditBoth = AuditFile | AuditNull
	// auditAll are the valid bits.
	auditAll = AuditFile | AuditNull | AuditOff | AuditSink | AuditSyslog
)

// auditMode names a mode.
type auditMode struct {
	mode   Audit
	name   string // of the -audit flag, and the report's audit column
	server string
}

// auditModes are the modes, in the order their servers start.
var auditModes = []auditMode{
	{AuditFile, "file", "kes"},
	{AuditNull, "null", "kes-null"},
	{AuditOff, "off", "kes-off"},
	{AuditSink, "sink", "kes-sink"},
	{AuditSyslog, "syslog", "kes-syslog"},
}

// parseAudit parses the -audit flag: "both" or a comma-separated list of
// file, null, off, sink and syslog.
func parseAudit(s string) (Audit, error) {
	if s == "both" {
		return AuditBoth, nil
	}
	var a Audit
	for name := range strings.SplitSeq(s, ",") {
		i := slices.IndexFunc(auditModes, func(m auditMode) bool { return m.name == name })
		if i < 0 {
			return 0, fmt.Errorf("-audit %q: want both or a list of file, null, off, sink and syslog", s)
		}
		a |= auditModes[i].mode
	}
	return a, nil
}

// Options configure a measurement. KES and Dir are required; zero values
// of the other fields mean the defaults of "kesload run".
type Options struct {
	KES        string        // the kes binary
	Dir        string        // work directory; must exist
	Requests   int           // per run; zero means 20000
	Clients    int           // concurrent clients; zero means 32
	Rounds     int           // zero means 3
	Warmup     int           // per client, server, protocol and op; zero means 100, negative none
	Audit      Audit         // zero means AuditFile
	RunTimeout time.Duration // deadline of one run; zero means 2 minutes
	Settle     time.Duration // wait before reading RSS; zero means none
	Protos     []Proto       // protocols to measure; empty means all
	Log        io.Writer     // progress lines; nil means none

	// HSM, if not empty, is the YAML of an hsm section (docs/hsm.md): a
	// further kes server, "kes-hsm", runs with it (audit log to a file),
	// so that one run compares kes with and without the HSM layer.
	HSM string

	// Base, if not empty, is a second kes binary (one built before a
	// change): every audit mode also runs a server of it, named with the
	// suffix "-base", so that one run measures before and after.
	Base string
}

// Bounds of the options, so that a typo cannot start an endless run.
const (
	maxRequests = 10_000_000
	maxClients  = 1024
	maxRounds   = 100
	maxWarmup   = 100_000
)

func (o Options) withDefaults() (Options, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Requests, 20000)
	def(&o.Clients, 32)
	def(&o.Rounds, 3)
	def(&o.Warmup, 100)
	o.Warmup = max(o.Warmup, 0)
	if o.Audit == 0 {
		o.Audit = AuditFile
	}
	if o.RunTimeout == 0 {
		o.RunTimeout = 2 * time.Minute
	}
	if len(o.Protos) == 0 {
		o.Protos = []Proto{HTTP1, HTTP2}
	}
	for _, p := range o.Protos {
		if p < 0 || p >= numProtos {
			return o, fmt.Errorf("kesload: invalid protocol %d", p)
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	switch {
	case o.KES == "" || o.Dir == "":
		return o, errors.New("kesload: options need the kes binary and a work directory")
	case o.Requests < 0 || o.Requests > maxRequests:
		return o, fmt.Errorf("kesload: requests %d out of range [1, %d]", o.Requests, maxRequests)
	case o.Clients < 0 || o.Clients > maxClients:
		return o, fmt.Errorf("kesload: clients %d out of range [1, %d]", o.Clients, maxClients)
	case o.Rounds < 0 || o.Rounds > maxRounds:
		return o, fmt.Errorf("kesload: rounds %d out of range [1, %d]", o.Rounds, maxRounds)
	case o.Warmup > maxWarmup:
		return o, fmt.Errorf("kesload: warm-up %d out of range [0, %d]", o.Warmup, maxWarmup)
	case o.Audit&^auditAll != 0:
		return o, fmt.Errorf("kesload: invalid audit mode %d", o.Audit)
	}
	return o, nil
}

// Server is a server process under load.
type Server struct {
	Name    string // "kes", "kes-null", "kes-off", "kes-sink", "kes-syslog" or "bare"
	KES     bool   // whether it is a kes server
	Stdout  string // where its audit log goes: the name of its Audit mode
	Audit   Audit  // the kes server's audit mode; zero for the bare server
	proc    *child
	targets [numOps]target
	clients [numProtos]*loadClient
	IdleRSS int64 // VmRSS after start, setup and settle, in bytes
}

// Pid returns the server's process ID.
func (s *Server) Pid() int { return s.proc.Pid() }

// Session is a set of running servers with their clients.
type Session struct {
	opts    Options
	creds   *credentials
	Servers []*Server // the kes servers, then the bare server
	syslog  *syslogDiscard
	lat     []time.Duration // latency slots of Measure, reused run after run
}

// Start starts the kes servers and the bare server of o and makes them
// ready: the key exists, one data key was generated and decrypted, and
// every client is set up (but not connected). Close stops them.
func Start(ctx context.Context, o Options) (_ *Session, err error) {
	if o, err = o.withDefaults(); err != nil {
		return nil, err
	}
	s := &Session{opts: o}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.creds, err = newCredentials(o.Dir); err != nil {
		return nil, err
	}
	if o.Audit&AuditSyslog != 0 {
		if s.syslog, err = newSyslogDiscard(); err != nil {
			return nil, err
		}
	}
	for _, m := range auditModes {
		if o.Audit&m.mode == 0 {
			continue
		}
		srv, err := s.startKES(ctx, m.mode, "", false)
		if err != nil {
			return nil, err
		}
		s.Servers = append(s.Servers, srv)
	}
	if o.HSM != "" {
		srv, err := s.startKES(ctx, AuditFile, o.HSM, false)
		if err != nil {
			return nil, err
		}
		s.Servers = append(s.Servers, srv)
	}
	if o.Base != "" {
		for _, m := range auditModes {
			if o.Audit&m.mode == 0 {
				continue
			}
			srv, err := s.startKES(ctx, m.mode, "", true)
			if err != nil {
				return nil, err
			}
			s.Servers = append(s.Servers, srv)
		}
	}
	if err := s.startBare(ctx); err != nil {
		return nil, err
	}
	for _, srv := range s.Servers {
		for p := range numProtos {
			srv.clients[p] = newLoadClient(p, o.Clients, s.creds.clientTLS())
		}
	}
	return s, nil
}

// Close stops every server and closes the clients' connections.
func (s *Session) Close() {
	for _, srv := range s.Servers {
		srv.proc.Stop()
		for _, c := range srv.clients {
			if c != nil {
				c.Close()
			}
		}
	}
	if s.syslog != nil {
		s.syslog.Close()
	}
}

// Server returns the server with the name, or nil.
func (s *Session) Server(name string) *Server {
	for _, srv := range s.Servers {
		if srv.Name == name {
			return srv
		}
	}
	return nil
}

// Bare returns the bare server.
func (s *Session) Bare() *Server { return s.Servers[len(s.Servers)-1] }

// startKES starts a kes server, creates the key, checks a generate and
// decrypt round trip and reads the idle RSS. A non-empty hsm is the YAML of
// the server's hsm section. base starts Options.Base instead of
// Options.KES, named with the suffix "-base".
func (s *Session) startKES(ctx context.Context, mode Audit, hsm string, base bool) (_ *Server, err error) {
	srv := &Server{KES: true, Audit: mode}
	for _, m := range auditModes {
		if m.mode == mode {
			srv.Name, srv.Stdout = m.server, m.name
		}
	}
	if hsm != "" {
		srv.Name, srv.Stdout = "kes-hsm", "file, hsm"
	}
	bin := s.opts.KES
	if base {
		bin, srv.Name, srv.Stdout = s.opts.Base, srv.Name+"-base", srv.Stdout+", base"
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if srv.proc, err = s.spawnKES(srv.Name, bin, addr, mode, hsm); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			srv.proc.Stop()
		}
	}()
	setup := newSetupClient(s.creds)
	defer setup.CloseIdleConnections()
	url := "https://" + addr
	if err := srv.proc.waitReady(ctx, func(ctx context.Context) error {
		_, err := call(ctx, setup, http.MethodGet, url+"/v1/ready", nil)
		return err
	}); err != nil {
		return nil, err
	}
	if err := srv.prepareKES(ctx, setup, url); err != nil {
		return nil, err
	}
	if err := s.settle(ctx, srv); err != nil {
		return nil, err
	}
	return srv, nil
}

// spawnKES writes the config of a kes server and starts it.
func (s *Session) spawnKES(name, bin, addr string, mode Audit, hsm string) (*child, error) {
	store := filepath.Join(s.opts.Dir, name+"-keys")
	if err := os.Mkdir(store, 0o700); err != nil {
		return nil, err
	}
	config := filepath.Join(s.opts.Dir, name+".yml")
	logConf := "  audit: on\n"
	switch mode {
	case AuditOff:
		logConf = "  audit: off\n"
	case AuditSink:
		logConf += fmt.Sprintf("  audit_stdout: off\n  audit_file:\n    path: %q\n", filepath.Join(s.opts.Dir, name+"-audit", "audit.log"))
	case AuditSyslog:
		logConf += fmt.Sprintf("  audit_stdout: off\n  audit_syslog:\n    network: udp\n    address: %s\n", s.syslog.Addr())
	}
	if err := writeKESConfig(config, addr, s.creds, fsKeyStore(store), logConf, hsm); err != nil {
		return nil, err
	}
	var stdout *os.File
	if mode == AuditFile {
		f, err := os.Create(filepath.Join(s.opts.Dir, name+".stdout"))
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child has its own descriptor
		stdout = f
	}
	env := strings.Fields(os.Getenv(envKESEnv))
	return startChild(name, bin, []string{"server", "--config", config}, env, stdout, s.opts.Dir)
}

// prepareKES creates the key, generates a data key and decrypts it, checks
// the plaintext, and sets the server's targets from the two replies.
func (srv *Server) prepareKES(ctx context.Context, setup *http.Client, base string) error {
	if _, err := call(ctx, setup, http.MethodPut, base+"/v1/key/create/"+keyName, nil); err != nil {
		return err
	}
	keyContext := make([]byte, 40) // about what MinIO sends
	rand.Read(keyContext)
	genBody, _ := json.Marshal(map[string][]byte{"context": keyContext})
	genReply, err := call(ctx, setup, http.MethodPost, base+Generate.Path(), genBody)
	if err != nil {
		return err
	}
	var gen struct{ Plaintext, Ciphertext []byte }
	if err := json.Unmarshal(genReply, &gen); err != nil || len(gen.Plaintext) != 32 || len(gen.Ciphertext) == 0 {
		return fmt.Errorf("%s: bad generate reply (%d bytes, %v)", srv.Name, len(genReply), err)
	}
	defer clear(gen.Plaintext)
	decBody, _ := json.Marshal(map[string][]byte{"ciphertext": gen.Ciphertext, "context": keyContext})
	decReply, err := call(ctx, setup, http.MethodPost, base+Decrypt.Path(), decBody)
	if err != nil {
		return err
	}
	var dec struct{ Plaintext []byte }
	if err := json.Unmarshal(decReply, &dec); err != nil {
		return fmt.Errorf("%s: bad decrypt reply: %w", srv.Name, err)
	}
	defer clear(dec.Plaintext)
	if subtle.ConstantTimeCompare(dec.Plaintext, gen.Plaintext) != 1 {
		return fmt.Errorf("%s: decrypt returned another plaintext than generate", srv.Name)
	}
	srv.targets[Generate] = target{url: base + Generate.Path(), body: genBody, replySize: len(genReply)}
	srv.targets[Decrypt] = target{url: base + Decrypt.Path(), body: decBody, replySize: len(decReply)}
	return nil
}

// startBare starts the bare server with replies of the kes servers' sizes
// and adds it to s.Servers.
func (s *Session) startBare(ctx context.Context) error {
	ref := s.Servers[0]
	for _, srv := range s.Servers[1:] {
		for op := range numOps {
			if srv.targets[op].replySize != ref.targets[op].replySize {
				return fmt.Errorf("%s and %s answer %v with different sizes", ref.Name, srv.Name, op)
			}
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"bare", "-addr", addr, "-cert", s.creds.certFile, "-key", s.creds.keyFile,
		"-generate-size", strconv.Itoa(ref.targets[Generate].replySize),
		"-decrypt-size", strconv.Itoa(ref.targets[Decrypt].replySize)}
	srv := &Server{Name: "bare", Stdout: "null"}
	if srv.proc, err = startChild(srv.Name, exe, args, nil, nil, s.opts.Dir); err != nil {
		return err
	}
	s.Servers = append(s.Servers, srv) // Close stops it from here on
	for op := range numOps {
		t := ref.targets[op]
		t.url = "https://" + addr + op.Path()
		srv.targets[op] = t
	}
	setup := newSetupClient(s.creds)
	defer setup.CloseIdleConnections()
	if err := srv.proc.waitReady(ctx, func(ctx context.Context) error {
		t := &srv.targets[Generate]
		reply, err := call(ctx, setup, http.MethodPost, t.url, t.body)
		if err == nil && len(reply) != t.replySize {
			return fmt.Errorf("bare: generate reply of %d bytes, want %d", len(reply), t.replySize)
		}
		return err
	}); err != nil {
		return err
	}
	return s.settle(ctx, srv)
}

// settle waits for Options.Settle and records the server's idle RSS.
func (s *Session) settle(ctx context.Context, srv *Server) (err error) {
	if err := sleepCtx(ctx, s.opts.Settle); err != nil {
		return err
	}
	srv.IdleRSS, err = readRSS(srv.Pid())
	return err
}

// newSetupClient returns an HTTP/1.1 client for the setup requests.
func newSetupClient(c *credentials) *http.Client {
	t := &http.Transport{TLSClientConfig: c.clientTLS(), Protocols: new(http.Protocols)}
	t.Protocols.SetHTTP1(true)
	return &http.Client{Transport: t, Timeout: 5 * time.Second}
}

// call sends a request and returns the body of a 200 reply.
func call(ctx context.Context, hc *http.Client, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytesReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d: %.200s", method, url, resp.StatusCode, reply)
	}
	return reply, nil
}

// bytesReader returns a reader of b, or nil (no body) if b is nil.
func bytesReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}
