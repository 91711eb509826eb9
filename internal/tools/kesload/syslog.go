package main

import (
	"net"
	"sync"
)

// syslogDiscard is a loopback UDP syslog receiver that reads and discards
// every datagram, the peer of the kes server measured with AuditSyslog.
type syslogDiscard struct {
	conn net.PacketConn
	wg   sync.WaitGroup
}

func newSyslogDiscard() (*syslogDiscard, error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &syslogDiscard{conn: conn}
	d.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return // closed
			}
		}
	})
	return d, nil
}

// Addr returns the receiver's address, host:port.
func (d *syslogDiscard) Addr() string { return d.conn.LocalAddr().String() }

// Close stops the receiver and waits for its goroutine.
func (d *syslogDiscard) Close() {
	d.conn.Close()
	d.wg.Wait()
}
