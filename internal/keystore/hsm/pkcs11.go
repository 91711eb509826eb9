//go:build cgo

package hsm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/openkes/kes/internal/keystore"
)

// A PKCS#11 library is initialized once per process (C_Initialize) and
// finalized once (C_Finalize), whatever number of stores use it: a reload
// opens the new store before it closes the old one, and finalizing then
// would end the new store's sessions. modules counts the users of each
// library by path.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: make(map[string]*module)}

// module is one loaded PKCS#11 library.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int // guarded by modules

	initMu sync.Mutex // serializes re-initialization
}

// loadModule loads and initializes the library at path, or takes another
// reference to it.
func loadModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("hsm: PKCS#11 module: %w", err)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: cannot load the PKCS#11 module %s (not a shared library for this platform, or missing dependencies)", path)
	}
	if err := ctx.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, unreachable(fmt.Errorf("hsm: initialize %s: %w", path, err))
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules.m[path] = m
	return m, nil
}

// release drops a reference; the last one finalizes and unloads the library.
func (m *module) release() error {
	modules.Lock()
	defer modules.Unlock()
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(modules.m, m.path)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	if err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return fmt.Errorf("hsm: finalize: %w", err)
	}
	return nil
}

// reinitialize initializes the library again after something finalized it
// (CKR_CRYPTOKI_NOT_INITIALIZED).
func (m *module) reinitialize() error {
	m.initMu.Lock()
	defer m.initMu.Unlock()
	if err := m.ctx.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return err
	}
	return nil
}

// token is the wrapping key in an HSM, used through a pool of sessions:
// a PKCS#11 session runs one operation at a time, so each call takes a
// session of its own.
type token struct {
	mod    *module
	cfg    Config // PIN and PINFile cleared; pin holds the PIN
	pin    string
	logger *slog.Logger
	sem    chan struct{} // one element per session in use

	mu       sync.Mutex
	gen      uint64 // bumped when the sessions were lost; sessions of older generations are closed
	idle     []session
	slot     uint
	key      pkcs11.ObjectHandle
	found    bool  // slot and key are those of gen
	pinError error // set once the token refused the PIN: no more logins
	closed   bool
}

// session is an open session and the key handle found for its
// generation (handles may change when the sessions are lost).
type session struct {
	h   pkcs11.SessionHandle
	gen uint64
	key pkcs11.ObjectHandle
}

var _ cipher = (*token)(nil)

// openToken loads the module of c, logs in and finds the key.
func openToken(ctx context.Context, c *Config, logger *slog.Logger) (*token, error) {
	pin := c.PIN
	if pin == "" {
		b, err := os.ReadFile(c.PINFile)
		if err != nil {
			return nil, fmt.Errorf("hsm: read the PIN file: %w", err)
		}
		pin = strings.TrimRight(string(b), "\r\n")
	}
	mod, err := loadModule(c.Module)
	if err != nil {
		return nil, err
	}
	n := c.Sessions
	if n == 0 {
		n = DefaultSessions
	}
	cfg := *c
	cfg.PIN, cfg.PINFile = "", ""
	t := &token{mod: mod, cfg: cfg, pin: pin, logger: logger, sem: make(chan struct{}, n)}
	s, err := t.acquire(ctx)
	if err != nil {
		mod.release()
		return nil, err
	}
	ext, err := mod.ctx.GetAttributeValue(s.h, s.key, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
	})
	t.release(s, err)
	if err == nil && len(ext) == 2 {
		switch {
		case len(ext[0].Value) == 1 && ext[0].Value[0] != 0:
			err = ErrExtractable
		case bytesToUint(ext[1].Value) != 32:
			err = fmt.Errorf("hsm: the key is not an AES-256 key (%d bytes)", bytesToUint(ext[1].Value))
		}
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("hsm: key %q: %w", c.Key, err)
	}
	return t, nil
}

func bytesToUint(b []byte) uint64 {
	// CK_ULONG in host byte order: little-endian on every platform kes
	// is built for.
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// acquire returns a session of the current generation, opening one (and
// logging in, and finding slot and key) if none is idle.
func (t *token) acquire(ctx context.Context) (session, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return session{}, fmt.Errorf("hsm: wait for a session: %w", ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		<-t.sem
		return session{}, errors.New("hsm: store closed")
	}
	if n := len(t.idle); n > 0 {
		s := t.idle[n-1]
		t.idle = t.idle[:n-1]
		return s, nil
	}
	s, err := t.openLocked()
	if err != nil {
		<-t.sem
		return session{}, err
	}
	return s, nil
}

// openLocked opens a session, re-initializing the library once if it was
// finalized under us. t.mu is held.
func (t *token) openLocked() (session, error) {
	s, err := t.openOnce()
	if isCode(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		t.logger.Warn("hsm: PKCS#11 library not initialized, initializing it again", "module", t.cfg.Module)
		if err := t.mod.reinitialize(); err != nil {
			return session{}, unreachable(fmt.Errorf("hsm: initialize %s: %w", t.cfg.Module, err))
		}
		t.found = false
		s, err = t.openOnce()
	}
	if err != nil {
		return session{}, classify("open session", err)
	}
	return s, nil
}

func (t *token) openOnce() (session, error) {
	if t.pinError != nil {
		return session{}, t.pinError
	}
	p := t.mod.ctx
	if !t.found {
		slot, err := t.findSlot()
		if err != nil {
			return session{}, err
		}
		t.slot = slot
	}
	h, err := p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.found = false
		return session{}, err
	}
	// Logging in is per application: the first session's login covers
	// the others, and a token that lost its sessions needs it again.
	if err := p.Login(h, pkcs11.CKU_USER, t.pin); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		p.CloseSession(h)
		if isCode(err, pkcs11.CKR_PIN_INCORRECT) || isCode(err, pkcs11.CKR_PIN_LOCKED) ||
			isCode(err, pkcs11.CKR_PIN_EXPIRED) || isCode(err, pkcs11.CKR_PIN_INVALID) || isCode(err, pkcs11.CKR_PIN_LEN_RANGE) {
			t.pinError = fmt.Errorf("%w (%v): fix the PIN and restart or reload", ErrPIN, err)
			return session{}, t.pinError
		}
		return session{}, err
	}
	if !t.found {
		key, err := t.findKey(h)
		if err != nil {
			p.CloseSession(h)
			return session{}, err
		}
		t.key, t.found = key, true
	}
	return session{h: h, gen: t.gen, key: t.key}, nil
}

// findSlot returns the slot of the configured token.
func (t *token) findSlot() (uint, error) {
	p := t.mod.ctx
	if t.cfg.Token == "" {
		if _, err := p.GetTokenInfo(*t.cfg.Slot); err != nil {
			return 0, err
		}
		return *t.cfg.Slot, nil
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, slot := range slots {
		info, err := p.GetTokenInfo(slot)
		if err == nil && strings.TrimRight(info.Label, " \x00") == t.cfg.Token {
			return slot, nil
		}
	}
	return 0, unreachable(fmt.Errorf("hsm: no token labelled %q is present", t.cfg.Token))
}

// findKey returns the handle of the AES key labelled cfg.Key.
func (t *token) findKey(h pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	p := t.mod.ctx
	err := p.FindObjectsInit(h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.cfg.Key),
	})
	if err != nil {
		return 0, err
	}
	objs, _, err := p.FindObjects(h, 2)
	if ferr := p.FindObjectsFinal(h); err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		return 0, err
	case len(objs) == 0:
		return 0, ErrNoKey
	case len(objs) > 1:
		return 0, errors.New("hsm: the token holds more than one AES key with this label")
	}
	return objs[0], nil
}

// release returns s to the pool, or closes it and every idle session of
// its generation if err says the sessions are lost.
func (t *token) release(s session, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() { <-t.sem }()
	if lost(err) {
		if s.gen == t.gen {
			t.gen++
			t.found = false
			for _, old := range t.idle {
				t.mod.ctx.CloseSession(old.h)
			}
			t.idle = t.idle[:0]
			t.logger.Warn("hsm: sessions lost, opening new ones", "module", t.cfg.Module, "error", err.Error())
		}
		t.mod.ctx.CloseSession(s.h)
		return
	}
	if t.closed || s.gen != t.gen {
		t.mod.ctx.CloseSession(s.h)
		return
	}
	t.idle = append(t.idle, s)
}

// do runs op on a session. If the session turns out lost (token removed,
// re-initialized, library finalized) it runs op once more on a new one.
func (t *token) do(ctx context.Context, what string, op func(p *pkcs11.Ctx, s session) error) error {
	for attempt := 0; ; attempt++ {
		s, err := t.acquire(ctx)
		if err != nil {
			count(err)
			return err
		}
		err = op(t.mod.ctx, s)
		t.release(s, err)
		if lost(err) && attempt == 0 {
			continue
		}
		count(err)
		if err != nil {
			return classify(what, err)
		}
		return nil
	}
}

func (t *token) seal(ctx context.Context, iv, aad, plain []byte) (usedIV, sealed []byte, err error) {
	err = t.do(ctx, "encrypt", func(p *pkcs11.Ctx, s session) error {
		params := pkcs11.NewGCMParams(iv, aad, tagSize*8)
		defer params.Free()
		if err := p.EncryptInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, s.key); err != nil {
			return err
		}
		out, err := p.Encrypt(s.h, plain)
		if err != nil {
			return err
		}
		// Some tokens choose the IV themselves and write it back.
		usedIV, sealed = params.IV(), out
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(usedIV) != ivSize {
		return nil, nil, fmt.Errorf("hsm: encrypt: the token used a %d-byte IV", len(usedIV))
	}
	return usedIV, sealed, nil
}

func (t *token) open(ctx context.Context, iv, aad, sealed []byte) (plain []byte, err error) {
	err = t.do(ctx, "decrypt", func(p *pkcs11.Ctx, s session) error {
		params := pkcs11.NewGCMParams(iv, aad, tagSize*8)
		defer params.Free()
		if err := p.DecryptInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, s.key); err != nil {
			return err
		}
		plain, err = p.Decrypt(s.h, sealed)
		if isCode(err, pkcs11.CKR_GENERAL_ERROR) || isCode(err, pkcs11.CKR_FUNCTION_FAILED) {
			// SoftHSM2 reports a wrong GCM tag as a general error: if
			// the key still encrypts on this session, the token is fine
			// and the record did not authenticate.
			if t.probe(p, s) == nil {
				return fmt.Errorf("%w (%v)", ErrUnwrap, err)
			}
		}
		return err
	})
	return plain, err
}

// probe encrypts one byte on s with a fresh IV.
func (t *token) probe(p *pkcs11.Ctx, s session) error {
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return err
	}
	params := pkcs11.NewGCMParams(iv, nil, tagSize*8)
	defer params.Free()
	if err := p.EncryptInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, s.key); err != nil {
		return err
	}
	_, err := p.Encrypt(s.h, []byte{0})
	return err
}

// close closes the idle sessions and releases the library. Sessions in use
// are closed when they are returned.
func (t *token) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, s := range t.idle {
		t.mod.ctx.CloseSession(s.h)
	}
	t.idle = nil
	t.mu.Unlock()
	// Wait for the sessions in use: the library must outlive them.
	for range cap(t.sem) {
		t.sem <- struct{}{}
	}
	return t.mod.release()
}

// lost reports whether err means the session (or all of them) is gone and
// a new one may succeed.
func lost(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_SLOT_ID_INVALID:
		return true
	}
	return false
}

// classify turns a PKCS#11 error into the layer's: an HSM that cannot be
// reached wraps *keystore.UnreachableError (the cache's fail-fast logic
// counts on it), a failed authentication matches ErrUnwrap.
func classify(what string, err error) error {
	var e pkcs11.Error
	switch {
	case keystore.IsUnreachable(err), errors.Is(err, ErrPIN), errors.Is(err, ErrNoKey), errors.Is(err, ErrUnwrap):
		return err
	case !errors.As(err, &e):
		return fmt.Errorf("hsm: %s: %w", what, err)
	case e == pkcs11.CKR_ENCRYPTED_DATA_INVALID, e == pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, e == pkcs11.CKR_SIGNATURE_INVALID:
		return fmt.Errorf("%w (%v)", ErrUnwrap, err)
	case lost(err), e == pkcs11.CKR_DEVICE_MEMORY, e == pkcs11.CKR_FUNCTION_FAILED, e == pkcs11.CKR_GENERAL_ERROR:
		return unreachable(fmt.Errorf("hsm: %s: %w", what, err))
	}
	return fmt.Errorf("hsm: %s: %w", what, err)
}

func unreachable(err error) error { return &keystore.UnreachableError{Err: err} }

func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}
