package api

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedLog collects log output written from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// limitHarness is a LimitListener on loopback whose accepted connections
// arrive on a channel.
type limitHarness struct {
	ln       net.Listener
	accepted chan net.Conn
	log      *lockedLog
}

func newLimitHarness(t *testing.T, total, perIP int) *limitHarness {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &limitHarness{accepted: make(chan net.Conn, 16), log: new(lockedLog)}
	h.ln = LimitListener(inner, total, perIP, slog.New(slog.NewTextHandler(h.log, nil)))
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := h.ln.Accept()
			if err != nil {
				close(h.accepted)
				return
			}
			h.accepted <- c
		}
	})
	t.Cleanup(func() {
		h.ln.Close()
		wg.Wait()
		for c := range h.accepted {
			c.Close()
		}
	})
	return h
}

// dial connects from the local IP from.
func (h *limitHarness) dial(t *testing.T, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// accept returns the server side of the next accepted connection.
func (h *limitHarness) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-h.accepted:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// dialRefused connects from the local IP from and reports whether the
// server closed the connection at once: the reset arrives during the
// dial, or the connection reads EOF or a reset instead of blocking.
func (h *limitHarness) dialRefused(t *testing.T, from string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", h.ln.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestLimitListener: connections over the per-address cap are closed at
// once while another address connects; closing one frees its place; the
// total cap counts every address; refusals are logged with the limit that
// was reached.
func TestLimitListener(t *testing.T) {
	h := newLimitHarness(t, 3, 2)
	var held []net.Conn
	for range 2 {
		h.dial(t, "127.0.0.1")
		held = append(held, h.accept(t))
	}
	overRefused := h.dialRefused(t, "127.0.0.1")
	other := h.dial(t, "127.0.0.2")
	// The listener accepts in order: the refused connection is behind
	// it when the other address's arrives.
	third := h.accept(t)
	if ip := remoteIP(third).String(); ip != "127.0.0.2" {
		t.Fatalf("accepted a connection from %s, want 127.0.0.2", ip)
	}
	if !overRefused {
		t.Fatal("the third connection from 127.0.0.1 was not closed")
	}
	// Total cap (3) reached: another address is refused too.
	if !h.dialRefused(t, "127.0.0.3") {
		t.Fatal("a connection over the total cap was not closed")
	}
	// Closing frees the place at once (Close releases it before it
	// returns); the listener then accepts the address again.
	held[0].Close()
	h.dial(t, "127.0.0.1")
	if c := h.accept(t); remoteIP(c).String() != "127.0.0.1" {
		t.Fatalf("accepted %s, want 127.0.0.1", remoteIP(c))
	}
	// Closing twice releases once.
	third.Close()
	third.Close()
	l := h.ln.(*limitListener)
	l.mu.Lock()
	open, byIP := l.open, len(l.byIP)
	l.mu.Unlock()
	if open != 2 || byIP != 1 {
		t.Errorf("after the closes: %d open from %d addresses, want 2 from 1", open, byIP)
	}
	other.Close()

	// The first refusal is logged; the second came within 10 s and is
	// counted into the next record.
	log := h.log.String()
	if n := strings.Count(log, "connection refused: too many connections"); n != 1 {
		t.Errorf("%d log records of refusals, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, `limit="per address" ip=127.0.0.1`) {
		t.Errorf("the log does not name the limit and address:\n%s", log)
	}
}

// TestLimitListenerNoCap: zero caps accept everything.
func TestLimitListenerNoCap(t *testing.T) {
	h := newLimitHarness(t, 0, 0)
	for range 5 {
		h.dial(t, "127.0.0.1")
		h.accept(t)
	}
}

// TestLimitListenerRefusedLog: a refusal 10 s after the last record is
// logged with the count of those in between.
func TestLimitListenerRefusedLog(t *testing.T) {
	var buf bytes.Buffer
	l := LimitListener(nil, 1, 0, slog.New(slog.NewTextHandler(&buf, nil))).(*limitListener)
	ip := remoteIP(fakeConn{addr: "192.0.2.1:1234"})
	if !l.acquire(ip) {
		t.Fatal("first connection refused")
	}
	for range 3 {
		l.acquire(ip)
	}
	l.logged = l.logged.Add(-refusalLogInterval)
	l.acquire(ip)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "refused=1") || !strings.Contains(lines[1], "refused=3") || !strings.Contains(lines[1], `limit=total`) {
		t.Errorf("log:\n%s", buf.String())
	}
}
