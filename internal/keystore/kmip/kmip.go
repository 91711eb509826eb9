// Package kmip implements a key store on a KMIP server (OASIS Key
// Management Interoperability Protocol, versions 1.0 to 1.4, over TLS 1.2+
// with a client certificate), an OpenKES extension: upstream KES has no
// KMIP store.
//
// Every key is a Secret Data object (type Password, key format Opaque)
// whose key material is the stored key record, unchanged, and whose Name
// attribute (uninterpreted text string) is the key's name:
//
//	create  Locate(name) must find nothing; Register; Locate(name) again
//	get     Locate(name); Get(id)
//	delete  Locate(name); Destroy(id), or Revoke(id) then Destroy(id)
//	list    Locate(Secret Data); Get Attributes(id, Name) in batches
//	status  Discover Versions
//
// KMIP servers do not keep names unique, so creating a name is a check
// followed by a write: see [Store.Create] for what two nodes racing to
// create one name get.
//
// The package imports internal/keystore (and its TLS and name helpers in
// keystore/rest) and the KMIP client github.com/ovh/kmip-go, nothing else
// of this module.
package kmip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	kmipgo "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"

	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/rest"
)

var _ keystore.Store = (*Store)(nil)

const (
	// maxNameLen bounds key names; KMIP text strings have no limit, but
	// servers do.
	maxNameLen = 1024
	// attrBatch is the number of Get Attributes requests of a list sent
	// in one message.
	attrBatch = 128
)

// ErrNameShared is wrapped by the error of Get for a name that more than
// one object carries: a create racing on another node that has not yet
// removed its object again, or an object left by a node that died in that
// window, which an operator removes (or a delete of the key removes all).
var ErrNameShared = errors.New("kmip: more than one object has the name")

// Store is a key store on a KMIP server. It is safe for concurrent use.
// Create it with [Connect] and release it with [Store.Close].
type Store struct {
	pool   *pool
	logger *slog.Logger
	// create serializes this store's creates, so that creates of one
	// name by one node never race each other (see Create).
	create chan struct{}

	// names remembers the names of the objects List has seen or Create
	// registered, by unique identifier, so that a List reads only the
	// names of objects new to it: KMIP identifiers are never reused
	// (PyKMIP's come from an AUTOINCREMENT column, other servers use
	// UUIDs) and the store never renames an object. List drops the
	// entries of objects that are gone.
	mu    sync.Mutex
	names map[string][]string
}

// Connect validates c, loads the client certificate and the CA, and opens
// a first connection (which negotiates the protocol version), so that a
// wrong endpoint or certificate fails here. logger may be nil
// (slog.Default).
func Connect(ctx context.Context, c *Config, logger *slog.Logger) (*Store, error) {
	if c == nil {
		return nil, ErrNoEndpoint
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	addrs := make([]string, len(c.Endpoints))
	for i, e := range c.Endpoints {
		addrs[i], _ = endpointAddr(e) // Validate checked them
	}
	conf, err := rest.TLSConfig(c.CAPath)
	if err != nil {
		return nil, fmt.Errorf("kmip: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		// The error names the files, never their contents.
		return nil, fmt.Errorf("kmip: client certificate: %w", err)
	}
	conf.Certificates = []tls.Certificate{cert}
	s := &Store{pool: newPool(addrs, conf, c.Username, c.Password), logger: logger, create: make(chan struct{}, 1), names: make(map[string][]string)}
	conn, _, err := s.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	s.pool.put(conn, false)
	return s, nil
}

// Close closes the store's connections. Calls in flight end with their
// connections closed.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// Status sends a Discover Versions request and returns its round trip
// (including the TLS handshake if no connection was open).
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	_, err := s.pool.do1(ctx, &payloads.DiscoverVersionsRequestPayload{})
	var op *OpError
	if err != nil && !errors.As(err, &op) {
		// A server that answers, even with a failure, is reachable.
		return keystore.State{}, fmt.Errorf("kmip: status: %w", err)
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

func checkName(name string) error {
	if err := rest.CheckName(name, maxNameLen); err != nil {
		return fmt.Errorf("kmip: key %q: %w", name, err)
	}
	return nil
}

// nameAttr is the Name attribute of a key.
func nameAttr(name string) kmipgo.Attribute {
	return kmipgo.Attribute{AttributeName: kmipgo.AttributeNameName, AttributeValue: kmipgo.Name{
		NameValue: name, NameType: kmipgo.NameTypeUninterpretedTextString,
	}}
}

var secretDataAttr = kmipgo.Attribute{AttributeName: kmipgo.AttributeNameObjectType, AttributeValue: kmipgo.ObjectTypeSecretData}

// locate returns the ids of the Secret Data objects named name.
func (s *Store) locate(ctx context.Context, name string) ([]string, error) {
	resp, err := s.pool.do1(ctx, &payloads.LocateRequestPayload{Attribute: []kmipgo.Attribute{secretDataAttr, nameAttr(name)}})
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*payloads.LocateResponsePayload)
	if !ok {
		return nil, fmt.Errorf("unexpected Locate response %T", resp)
	}
	return r.UniqueIdentifier, nil
}

// Create registers value under name if no object carries the name.
//
// KMIP servers do not enforce unique names, so Create locates the name,
// registers the object and locates the name again: if another object
// carries the name by then, it destroys its own and returns ErrExists.
// Creates of one store are serialized, so on one node exactly one of
// concurrent creates of a name succeeds. Of creates racing on several
// nodes (against one KMIP server, or a cluster that orders its writes) at
// most one succeeds; in a close race all of them may answer ErrExists
// and leave the name free, and a retry succeeds. While the losers'
// objects exist, Get of the name fails with [ErrNameShared] rather than
// return a value that is about to disappear.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	select {
	case s.create <- struct{}{}:
		defer func() { <-s.create }()
	case <-ctx.Done():
		return &keystore.UnreachableError{Err: fmt.Errorf("kmip: create key %q: %w", name, ctx.Err())}
	}
	ids, err := s.locate(ctx, name)
	if err != nil {
		return fmt.Errorf("kmip: create key %q: %w", name, err)
	}
	if len(ids) > 0 {
		return fmt.Errorf("kmip: create key %q: %w", name, keystore.ErrExists)
	}
	material := slices.Clone(value)
	resp, err := s.pool.do1(ctx, &payloads.RegisterRequestPayload{
		ObjectType:        kmipgo.ObjectTypeSecretData,
		TemplateAttribute: kmipgo.TemplateAttribute{Attribute: []kmipgo.Attribute{nameAttr(name)}},
		Object: &kmipgo.SecretData{
			SecretDataType: kmipgo.SecretDataTypePassword,
			KeyBlock: kmipgo.KeyBlock{
				KeyFormatType: kmipgo.KeyFormatTypeOpaque,
				KeyValue:      &kmipgo.KeyValue{Plain: &kmipgo.PlainKeyValue{KeyMaterial: kmipgo.KeyMaterial{Bytes: &material}}},
			},
		},
	})
	if isReason(err, kmipgo.ResultReasonObjectAlreadyExists) {
		// A server that keeps names unique.
		return fmt.Errorf("kmip: create key %q: %w", name, keystore.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("kmip: create key %q: %w", name, err)
	}
	r, ok := resp.(*payloads.RegisterResponsePayload)
	if !ok || r.UniqueIdentifier == "" {
		return fmt.Errorf("kmip: create key %q: unexpected Register response %T", name, resp)
	}
	ids, err = s.locate(ctx, name)
	if err != nil {
		// The object is registered but not known to be the only one;
		// a Get that finds two fails until one is gone.
		return fmt.Errorf("kmip: create key %q: check name: %w", name, err)
	}
	if len(ids) == 1 && ids[0] == r.UniqueIdentifier || !slices.Contains(ids, r.UniqueIdentifier) {
		s.mu.Lock()
		s.names[r.UniqueIdentifier] = []string{name}
		s.mu.Unlock()
		return nil // ours alone, or deleted already by someone who saw it
	}
	// Another node registered the name too: step back.
	if err := s.destroy(context.WithoutCancel(ctx), r.UniqueIdentifier); err != nil {
		s.logger.Error("key store could not remove its object of a lost create race", "store", "kmip", "key", name, "object", r.UniqueIdentifier, "err", err)
	}
	return fmt.Errorf("kmip: create key %q: created concurrently by another node: %w", name, keystore.ErrExists)
}

// Get returns the key material of the object named name.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ids, err := s.locate(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("kmip: get key %q: %w", name, err)
	}
	switch len(ids) {
	case 0:
		return nil, fmt.Errorf("kmip: get key %q: %w", name, keystore.ErrNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("kmip: get key %q: %w (%d)", name, ErrNameShared, len(ids))
	}
	resp, err := s.pool.do1(ctx, &payloads.GetRequestPayload{UniqueIdentifier: ids[0]})
	if isReason(err, kmipgo.ResultReasonItemNotFound) {
		return nil, fmt.Errorf("kmip: get key %q: %w", name, keystore.ErrNotFound) // deleted meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("kmip: get key %q: %w", name, err)
	}
	r, ok := resp.(*payloads.GetResponsePayload)
	if !ok {
		return nil, fmt.Errorf("kmip: get key %q: unexpected Get response %T", name, resp)
	}
	sd, ok := r.Object.(*kmipgo.SecretData)
	if !ok {
		return nil, fmt.Errorf("kmip: get key %q: object %s is a %T, not Secret Data", name, ids[0], r.Object)
	}
	b, err := sd.Data()
	if err != nil {
		return nil, fmt.Errorf("kmip: get key %q: object %s: %w", name, ids[0], err)
	}
	return b, nil
}

// Delete destroys every object named name (normally one). It returns
// ErrNotFound if there is none.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	ids, err := s.locate(ctx, name)
	if err != nil {
		return fmt.Errorf("kmip: delete key %q: %w", name, err)
	}
	gone := 0
	for _, id := range ids {
		err := s.destroy(ctx, id)
		if isReason(err, kmipgo.ResultReasonItemNotFound) {
			gone++ // a concurrent delete
			continue
		}
		if err != nil {
			return fmt.Errorf("kmip: delete key %q: %w", name, err)
		}
	}
	if gone == len(ids) {
		return fmt.Errorf("kmip: delete key %q: %w", name, keystore.ErrNotFound)
	}
	return nil
}

// destroy destroys the object id. A server that refuses to destroy an
// object in the Active state (the store never activates its objects, but
// a server may) gets a Revoke (cessation of operation) first.
func (s *Store) destroy(ctx context.Context, id string) error {
	_, err := s.pool.do1(ctx, &payloads.DestroyRequestPayload{UniqueIdentifier: id})
	var op *OpError
	if err == nil || !errors.As(err, &op) || op.Reason == kmipgo.ResultReasonItemNotFound {
		return err
	}
	_, rerr := s.pool.do1(ctx, &payloads.RevokeRequestPayload{
		UniqueIdentifier: id,
		RevocationReason: kmipgo.RevocationReason{RevocationReasonCode: kmipgo.RevocationReasonCodeCessationOfOperation},
	})
	if rerr != nil {
		return fmt.Errorf("destroy %s: %w; revoke: %w", id, err, rerr)
	}
	_, err = s.pool.do1(ctx, &payloads.DestroyRequestPayload{UniqueIdentifier: id})
	return err
}

// List locates every Secret Data object, reads their names in batches
// and answers the page from all of them ([keystore.Page]): KMIP's Locate
// cannot match a name prefix. Objects without a Name are left out.
func (s *Store) List(ctx context.Context, prefix, continueAt string, n int) ([]string, string, error) {
	resp, err := s.pool.do1(ctx, &payloads.LocateRequestPayload{Attribute: []kmipgo.Attribute{secretDataAttr}})
	if err != nil {
		return nil, "", fmt.Errorf("kmip: list keys: %w", err)
	}
	r, ok := resp.(*payloads.LocateResponsePayload)
	if !ok {
		return nil, "", fmt.Errorf("kmip: list keys: unexpected Locate response %T", resp)
	}
	ids := r.UniqueIdentifier
	known := make(map[string][]string, len(ids))
	var unknown []string
	s.mu.Lock()
	for _, id := range ids {
		if ns, ok := s.names[id]; ok {
			known[id] = ns
		} else {
			unknown = append(unknown, id)
		}
	}
	s.mu.Unlock()
	for batch := range slices.Chunk(unknown, attrBatch) {
		if err := s.readNames(ctx, batch, known); err != nil {
			return nil, "", fmt.Errorf("kmip: list keys: %w", err)
		}
	}
	var names []string
	for _, ns := range known {
		names = append(names, ns...)
	}
	// Published only after the last read here: from now on Create
	// writes to the map under s.mu while this call may still run.
	s.mu.Lock()
	s.names = known // the objects that exist now
	s.mu.Unlock()
	slices.Sort(names)
	names = slices.Compact(names) // a name shared by racing creates
	page, next := keystore.Page(names, prefix, continueAt, n)
	return page, next, nil
}

// readNames reads the Name attributes of the objects ids into names, in
// one batch. Objects deleted meanwhile are left out.
func (s *Store) readNames(ctx context.Context, ids []string, names map[string][]string) error {
	reqs := make([]kmipgo.OperationPayload, len(ids))
	for i, id := range ids {
		reqs[i] = &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []kmipgo.AttributeName{kmipgo.AttributeNameName}}
	}
	resps, errs, err := s.pool.do(ctx, reqs...)
	if err != nil {
		return err
	}
	for i, resp := range resps {
		if isReason(errs[i], kmipgo.ResultReasonItemNotFound) {
			continue
		}
		if errs[i] != nil {
			return fmt.Errorf("object %s: %w", ids[i], errs[i])
		}
		a, ok := resp.(*payloads.GetAttributesResponsePayload)
		if !ok {
			return fmt.Errorf("unexpected Get Attributes response %T", resp)
		}
		var n []string
		for _, attr := range a.Attribute {
			if v, ok := attr.AttributeValue.(kmipgo.Name); ok && attr.AttributeName == kmipgo.AttributeNameName &&
				v.NameType != kmipgo.NameTypeUri && v.NameValue != "" {
				n = append(n, v.NameValue)
			}
		}
		names[ids[i]] = n // also none: an object without a name stays unlisted
	}
	return nil
}
