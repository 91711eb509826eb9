// Package proxytest runs real TLS-terminating proxies, nginx and HAProxy,
// in front of a KES server for the tests of the TLS-proxy mode: each
// proxy verifies its clients' certificates, forwards the client's
// certificate in a header and X-Forwarded-For, and connects to the server
// with its own client certificate (the proxy identity).
//
// The binaries come from the distribution's packages:
// scripts/install-proxies.sh installs them, and OPENKES_NGINX_BIN and
// OPENKES_HAPROXY_BIN may name them. A missing binary fails the test with
// a hint; it never skips. Every proxy gets its configuration and logs in
// t.TempDir(), listens on a loopback socket the test opened (so no port
// can be taken in between and no readiness poll is needed) and is stopped
// at cleanup.
//
// This package is imported by tests only. It must not import the server.
package proxytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/openkes/kes/internal/peerbin"
)

var (
	nginxPeer   = &peerbin.Peer{Name: "nginx", Env: "OPENKES_NGINX_BIN", Script: "install-proxies.sh", Args: []string{"nginx"}}
	haproxyPeer = &peerbin.Peer{Name: "HAProxy", Env: "OPENKES_HAPROXY_BIN", Script: "install-proxies.sh", Args: []string{"haproxy"}}
)

// DefaultHeader is the forwarded-certificate header of upstream's sample
// configuration.
const DefaultHeader = "X-Tls-Client-Cert"

// Config says how a proxy terminates client TLS and reaches the server.
type Config struct {
	// Upstream is the server's loopback address, host:port.
	Upstream string
	// Upstreams, if not empty, are the loopback addresses of several
	// servers (a cluster) that the proxy balances its requests over
	// round-robin instead of Upstream. A request that a server does not
	// answer, or answers with 502, 503 or 504, goes on to the next server,
	// also if it is not idempotent: a repeated KES request is harmless (a
	// repeated create answers "key already exists"). nginx only.
	Upstreams []string
	// UpstreamCA is a PEM file with the roots of the server's
	// certificate, which must be valid for localhost.
	UpstreamCA string
	// Server is the certificate the proxy presents to its clients.
	Server *Cert
	// Client is the certificate the proxy presents to the server: its
	// identity is the proxy identity.
	Client *Cert
	// ClientCA is a PEM file with the roots the proxy verifies its
	// clients' certificates with.
	ClientCA string
	// Header is the forwarded-certificate header; empty means
	// [DefaultHeader].
	Header string
	// Value is the proxy's expression for the header's value. Empty means
	// the usual one: nginx's $ssl_client_escaped_cert (URL-escaped PEM),
	// HAProxy's %[ssl_c_der,base64] (base64 DER).
	Value string
}

// Proxy is a running proxy.
type Proxy struct {
	// Addr is where clients connect, 127.0.0.1:port.
	Addr string

	name    string
	dir     string
	logFile string
	exited  chan error // receives the exit status, then is refilled
}

// Logs returns the end of the proxy's log and output, and its exit
// status if it stopped, for a failure message: a proxy that does not
// start closes the socket, so the test's first request fails at once.
func (p *Proxy) Logs() string {
	status := "running"
	select {
	case err := <-p.exited:
		p.exited <- err
		status = fmt.Sprintf("exited: %v", err)
	default:
	}
	s := fmt.Sprintf("%s (%s), %s:\n%s", p.name, status, filepath.Base(p.logFile), readTail(p.logFile))
	if out := filepath.Join(p.dir, "output.log"); out != p.logFile {
		s += "\noutput:\n" + readTail(out)
	}
	return s
}

var nginxConf = template.Must(template.New("nginx").Parse(`daemon off;
worker_processes 1;
{{if .Root}}user root root;{{end}}
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path {{.Dir}}/client_body;
	proxy_temp_path {{.Dir}}/proxy_temp;
	fastcgi_temp_path {{.Dir}}/fastcgi_temp;
	uwsgi_temp_path {{.Dir}}/uwsgi_temp;
	scgi_temp_path {{.Dir}}/scgi_temp;

	upstream kes {
{{- range .Servers}}
		server {{.}};
{{- end}}
		keepalive 4; # connections are shared by every client
	}
	server {
		listen {{.Addr}} ssl;
		ssl_certificate {{.C.Server.CertFile}};
		ssl_certificate_key {{.C.Server.KeyFile}};
		ssl_client_certificate {{.C.ClientCA}};
		ssl_verify_client on;

		location / {
			proxy_pass https://kes;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
			proxy_request_buffering off;
			proxy_ssl_certificate {{.C.Client.CertFile}};
			proxy_ssl_certificate_key {{.C.Client.KeyFile}};
			proxy_ssl_trusted_certificate {{.C.UpstreamCA}};
			proxy_ssl_verify on;
			proxy_ssl_name localhost;
			proxy_ssl_server_name on;
			proxy_ssl_session_reuse on;
			proxy_set_header {{.C.Header}} "{{.C.Value}}";
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
{{- if gt (len .Servers) 1}}
			proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
{{- end}}
		}
	}
}
`))

// Nginx starts nginx with c and stops it at t's cleanup.
func Nginx(t testing.TB, c Config) *Proxy {
	t.Helper()
	bin := nginxPeer.Bin(t)
	if c.Value == "" {
		c.Value = "$ssl_client_escaped_cert"
	}
	return start(t, "nginx", c, nginxConf, func(dir, conf string) *exec.Cmd {
		cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
		// nginx takes over listening sockets named in $NGINX (as in its
		// binary upgrade): fd 3 is the test's socket.
		cmd.Env = append(os.Environ(), "NGINX=3;")
		return cmd
	}, "error.log")
}

var haproxyConf = template.Must(template.New("haproxy").Parse(`global
	maxconn 256
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend clients
	bind fd@3 ssl crt {{.C.Server.PEMFile}} ca-file {{.C.ClientCA}} verify required alpn h2,http/1.1
	option forwardfor
	http-request set-header {{.C.Header}} {{.C.Value}}
	default_backend kes
backend kes
	server kes {{index .Servers 0}} ssl verify required ca-file {{.C.UpstreamCA}} crt {{.C.Client.PEMFile}} sni str(localhost) verifyhost localhost
`))

// HAProxy starts HAProxy with c and stops it at t's cleanup.
func HAProxy(t testing.TB, c Config) *Proxy {
	t.Helper()
	bin := haproxyPeer.Bin(t)
	if c.Value == "" {
		c.Value = "%[ssl_c_der,base64]"
	}
	if len(c.Upstreams) > 0 {
		t.Fatal("proxytest: Upstreams is not supported with HAProxy")
	}
	return start(t, "haproxy", c, haproxyConf, func(dir, conf string) *exec.Cmd {
		return exec.Command(bin, "-db", "-f", conf)
	}, "output.log")
}

// start writes the configuration of c into a new directory, opens the
// listening socket and starts the proxy on it as fd 3.
func start(t testing.TB, name string, c Config, tmpl *template.Template, command func(dir, conf string) *exec.Cmd, logName string) *Proxy {
	t.Helper()
	if c.Header == "" {
		c.Header = DefaultHeader
	}
	servers := c.Upstreams
	if len(servers) == 0 {
		servers = []string{c.Upstream}
	}
	if c.Server == nil || c.Client == nil || servers[0] == "" || c.UpstreamCA == "" || c.ClientCA == "" {
		t.Fatalf("proxytest: incomplete %s config", name)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	file, err := ln.(*net.TCPListener).File()
	ln.Close() // the duplicate in file keeps the socket open and listening
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), name: name, dir: dir, logFile: filepath.Join(dir, logName)}

	var conf bytes.Buffer
	err = tmpl.Execute(&conf, struct {
		C         Config
		Servers   []string
		Dir, Addr string
		Root      bool
	}{c, servers, dir, p.Addr, os.Geteuid() == 0})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, name+".conf")
	writeFile(t, confFile, conf.Bytes())

	out, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := command(dir, confFile)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{file}
	err = cmd.Start()
	file.Close() // only the proxy holds the socket now: if it dies, clients are refused
	out.Close()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			done <- err
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			done <- <-done
		}
	})
	p.exited = done
	return p
}

func readTail(name string) string {
	b, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return peerbin.LastLines(string(b), 30)
}
