package kmip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	kmipgo "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"

	"github.com/openkes/kes/internal/keystore"
)

// maxConns bounds the connections a store keeps open. A KMIP connection
// carries one request at a time, so it is also the number of requests in
// flight; more wait for a connection (or their context).
const maxConns = 8

// maxMessageLen cuts a server's result message in errors.
const maxMessageLen = 200

// pool hands out connections, one caller at a time each, and keeps up to
// maxConns of them open. It is safe for concurrent use.
type pool struct {
	addrs []string
	tls   *tls.Config
	mw    []kmipclient.Middleware

	idle  chan *conn    // idle connections, cap maxConns
	slots chan struct{} // one token per open connection

	mu     sync.Mutex
	closed bool
}

// conn is a client on one network connection. The client would dial
// again after a connection fails and send the request once more; conn
// refuses that second dial, so that no request (a Register) is ever sent
// twice, and closes its network connection itself (the client cannot be
// closed once a dial failed).
type conn struct {
	c *kmipclient.Client

	mu     sync.Mutex
	nc     net.Conn
	dialed bool
}

// errConnLost is the error of a request whose connection failed.
var errConnLost = errors.New("connection lost")

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close() // ends the client's reader and writer goroutines
	}
}

func newPool(addrs []string, conf *tls.Config, username, password string) *pool {
	p := &pool{
		addrs: addrs, tls: conf,
		idle:  make(chan *conn, maxConns),
		slots: make(chan struct{}, maxConns),
	}
	if username != "" {
		cred := &kmipgo.Authentication{Credential: kmipgo.Credential{
			CredentialType: kmipgo.CredentialTypeUsernameAndPassword,
			CredentialValue: kmipgo.CredentialValue{UserPassword: &kmipgo.CredentialValueUserPassword{
				Username: username, Password: password,
			}},
		}}
		p.mw = append(p.mw, func(next kmipclient.Next, ctx context.Context, msg *kmipgo.RequestMessage) (*kmipgo.ResponseMessage, error) {
			msg.Header.Authentication = cred
			return next(ctx, msg)
		})
	}
	return p
}

var errClosed = errors.New("kmip: store is closed")

// get returns an idle connection (fresh is false) or opens one, waiting
// for a free slot up to ctx's end. The caller gives it back with put.
func (p *pool) get(ctx context.Context) (c *conn, fresh bool, err error) {
	select {
	case c := <-p.idle:
		return c, false, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, false, nil
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, &keystore.UnreachableError{Err: fmt.Errorf("kmip: wait for a connection: %w", ctx.Err())}
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.slots
		return nil, false, errClosed
	}
	c, err = p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, true, nil
}

// dial connects to the first endpoint that answers, negotiating the
// protocol version (Discover Versions; KMIP 1.4 down to 1.0). The TLS
// handshake and the negotiation end with ctx.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	var errs []error
	for _, addr := range p.addrs {
		c := new(conn)
		d := &tls.Dialer{Config: p.tls}
		client, err := kmipclient.DialContext(ctx, addr, kmipclient.WithMiddlewares(p.mw...),
			kmipclient.WithDialerUnsafe(func(ctx context.Context, addr string) (net.Conn, error) {
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.dialed {
					return nil, errConnLost
				}
				c.dialed = true
				nc, err := d.DialContext(ctx, "tcp", addr)
				c.nc = nc
				return nc, err
			}))
		if err == nil {
			c.c = client
			return c, nil
		}
		c.close()
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &keystore.UnreachableError{Err: fmt.Errorf("kmip: connect: %w", errors.Join(errs...))}
}

// put gives c back. A connection whose request failed in transport (or
// was abandoned when its context ended) is closed, so that no answer to
// an old request can be read as the answer to a new one.
func (p *pool) put(c *conn, broken bool) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if broken || closed {
		c.close()
		<-p.slots
		return
	}
	p.idle <- c // never blocks: at most maxConns connections exist
}

// close closes the idle connections and makes put close the others.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.close()
			<-p.slots
		default:
			return
		}
	}
}

// OpError is a KMIP operation the server answered with a failure.
type OpError struct {
	Op      kmipgo.Operation
	Reason  kmipgo.ResultReason
	Message string // the server's result message, cut to 200 bytes
}

func (e *OpError) Error() string {
	op, reason := strings.TrimPrefix(fmt.Sprint(e.Op), "Operation"), fmt.Sprint(e.Reason)
	if e.Message == "" {
		return fmt.Sprintf("%s failed: %s", op, reason)
	}
	return fmt.Sprintf("%s failed: %s: %s", op, reason, e.Message)
}

// do sends the payloads as one batch on a pooled connection and returns
// each item's payload or its *OpError (in errs, nil for a success). err is
// a transport failure (wrapping *keystore.UnreachableError) or the
// context's end.
func (p *pool) do(ctx context.Context, reqs ...kmipgo.OperationPayload) (resps []kmipgo.OperationPayload, errs []error, err error) {
	var opts []kmipclient.BatchOption
	if len(reqs) > 1 {
		// An item that fails (an object deleted meanwhile) must not
		// stop the others.
		opts = append(opts, kmipclient.OnBatchErr(kmipgo.BatchErrorContinuationOptionContinue))
	}
	var items kmipclient.BatchResult
	for {
		c, fresh, err := p.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		items, err = c.c.BatchOpt(ctx, reqs, opts...)
		if err == nil {
			p.put(c, false)
			break
		}
		p.put(c, true)
		// An idle connection may have been closed by the server (or a
		// proxy) meanwhile: a request that only reads is sent once
		// more, on a new connection.
		if fresh || ctx.Err() != nil || !readOnly(reqs) {
			return nil, nil, &keystore.UnreachableError{Err: fmt.Errorf("kmip: %s: %w", c.c.Addr(), err)}
		}
	}
	resps, errs = make([]kmipgo.OperationPayload, len(items)), make([]error, len(items))
	for i, it := range items {
		if it.ResultStatus != kmipgo.ResultStatusSuccess {
			msg := it.ResultMessage
			if len(msg) > maxMessageLen {
				msg = strings.ToValidUTF8(msg[:maxMessageLen], "") + "…"
			}
			op := it.Operation
			if op == 0 {
				op = reqs[i].Operation()
			}
			errs[i] = &OpError{Op: op, Reason: it.ResultReason, Message: msg}
			continue
		}
		resps[i] = it.ResponsePayload
	}
	return resps, errs, nil
}

// readOnly reports whether every request only reads.
func readOnly(reqs []kmipgo.OperationPayload) bool {
	for _, r := range reqs {
		switch r.Operation() {
		case kmipgo.OperationLocate, kmipgo.OperationGet, kmipgo.OperationGetAttributes, kmipgo.OperationDiscoverVersions, kmipgo.OperationQuery:
		default:
			return false
		}
	}
	return true
}

// do1 is do for one request.
func (p *pool) do1(ctx context.Context, req kmipgo.OperationPayload) (kmipgo.OperationPayload, error) {
	resps, errs, err := p.do(ctx, req)
	if err != nil {
		return nil, err
	}
	return resps[0], errs[0]
}

// isReason reports whether err is an *OpError for one of reasons.
func isReason(err error, reasons ...kmipgo.ResultReason) bool {
	var op *OpError
	if !errors.As(err, &op) {
		return false
	}
	for _, r := range reasons {
		if op.Reason == r {
			return true
		}
	}
	return false
}
