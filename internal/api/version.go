package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
)

// Key versions, rotation and re-wrap: OpenKES extensions
// (docs/key-rotation.md). A key never rotated answers every upstream route
// exactly as upstream; the version fields of upstream's bodies are filled
// only for rotated keys.

const (
	// maxCASAttempts bounds the compare-and-swap rounds of a rotation or
	// a version change that other changes of the same key keep beating.
	// Every lost round means another change won, so the store progresses.
	maxCASAttempts = 32
	// maxRewrap bounds the ciphertexts of one bulk re-wrap request.
	maxRewrap = 1000
)

// errRotateKey answers a rotation or version change the store failed.
var errRotateKey = kes.NewError(http.StatusBadGateway, "failed to rotate key")

// parseVersion returns the version a request names in upstream's string
// field: "2" or "v2". Empty, "0" and texts that are no version number
// mean the current version (0), as upstream ignores the field.
func parseVersion(s string) uint32 {
	if s == "" {
		return 0
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// versionField is the "version" field of a response about key: the
// version used, for rotated keys only, so that keys never rotated answer
// exactly as upstream.
func versionField(key crypto.Key, used uint32) bytesField {
	if !key.Rotated() {
		return bytesField{}
	}
	return bytesField{name: "version", text: strconv.FormatUint(uint64(used), 10)}
}

// refresh reads the request's key again, at most once a second per key
// (cache.RefreshInterval; a caller may wait for the rest of that second):
// another node may have rotated it. It reports false if that fails; the
// caller then goes on with key.
func (s *Server) refresh(r *request, key crypto.Key) (crypto.Key, bool) {
	ctx, cancel := r.storeContext()
	defer cancel()
	k, err := r.state.keys.Refresh(ctx, r.Resource)
	if err != nil {
		s.debug(r, "key refresh failed")
		return key, false
	}
	return k, true
}

// encrypt encrypts plaintext under version number of key (0: the
// current one) and returns the ciphertext and the response's version
// field, or writes the error (failure for an unexpected one).
func (s *Server) encrypt(w http.ResponseWriter, r *request, key crypto.Key, number uint32, plaintext, associatedData []byte, failure *kes.Error) ([]byte, bytesField, bool) {
	if number > key.Latest() { // a version this node may not know yet
		key, _ = s.refresh(r, key)
	}
	ciphertext, used, err := key.Encrypt(number, plaintext, associatedData)
	switch {
	case err == nil:
		return ciphertext, versionField(key, used), true
	case errors.Is(err, crypto.ErrNoVersion):
		writeError(w, kes.ErrKeyVersionNotFound)
	case errors.Is(err, crypto.ErrVersionDisabled):
		writeError(w, kes.ErrKeyVersionDisabled)
	default:
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, failure)
	}
	return nil, bytesField{}, false
}

// decrypt decrypts ciphertext with key. A ciphertext that does not open
// and names a version newer than key's (rotated on another node since
// key was cached) is tried again with the key read again, at most once a
// second per key: ciphertexts naming made-up versions cost no more store
// reads than that (their requests wait for their turn, up to a second,
// before they fail). It returns the key it used.
func (s *Server) decrypt(r *request, key crypto.Key, ciphertext, associatedData []byte, number uint32) ([]byte, crypto.Key, uint32, error) {
	plaintext, used, err := key.Decrypt(ciphertext, associatedData, number)
	if errors.Is(err, crypto.ErrDecrypt) && (key.Unknown(ciphertext) || number > key.Latest()) {
		if k, ok := s.refresh(r, key); ok && k.Latest() > key.Latest() {
			key = k
			plaintext, used, err = key.Decrypt(ciphertext, associatedData, number)
		}
	}
	return plaintext, key, used, err
}

// replaceKey changes the stored record of the request's key by
// compare-and-swap: it reads the record, lets change compute the new one
// and replaces the old with it, again from a new read if another change
// came first. change returns nil to leave the record as it is. It reports
// false once it wrote the error.
func (s *Server) replaceKey(w http.ResponseWriter, r *request, change func(old []byte) ([]byte, error)) bool {
	name, ok := keyName(w, r)
	if !ok {
		return false
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	keys := r.state.keys
	for range maxCASAttempts {
		old, err := keys.Read(ctx, name)
		if err != nil {
			s.storeError(ctx, w, r, err, errReadKey)
			return false
		}
		next, err := change(old)
		if err != nil {
			clear(old)
			s.versionError(w, r, err)
			return false
		}
		if next == nil {
			clear(old)
			return true
		}
		err = keys.Replace(ctx, name, old, next)
		clear(old) // records hold key material
		clear(next)
		switch {
		case err == nil:
			return true
		case errors.Is(err, keystore.ErrChanged):
			continue
		case errors.Is(err, errors.ErrUnsupported):
			writeError(w, kes.ErrRotateUnsupported)
			return false
		}
		s.storeError(ctx, w, r, err, errRotateKey)
		return false
	}
	writeError(w, kes.ErrKeyChanged)
	return false
}

// versionError writes the answer for an error of the record functions.
func (s *Server) versionError(w http.ResponseWriter, r *request, err error) {
	switch {
	case errors.Is(err, crypto.ErrNoVersion):
		writeError(w, kes.ErrKeyVersionNotFound)
	case errors.Is(err, crypto.ErrCurrentVersion):
		writeError(w, kes.ErrCurrentKeyVersion)
	case errors.Is(err, crypto.ErrTooManyVersions):
		writeError(w, kes.ErrTooManyKeyVersions)
	case errors.Is(err, crypto.ErrInvalidRecord):
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errReadKey)
	default:
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errRotateKey)
	}
}

// rotateKey adds a version to the key and makes it current.
func (s *Server) rotateKey(w http.ResponseWriter, r *request) {
	var number uint32
	ok := s.replaceKey(w, r, func(old []byte) ([]byte, error) {
		next, n, err := crypto.RotateRecord(old, r.Identity.String(), time.Now(), s.rand)
		number = n
		return next, err
	})
	if ok {
		writeJSON(w, kes.RotateKeyResponse{Name: r.Resource, Version: int(number)})
	}
}

func (s *Server) disableKeyVersion(w http.ResponseWriter, r *request) {
	s.setVersionDisabled(w, r, true)
}

func (s *Server) enableKeyVersion(w http.ResponseWriter, r *request) {
	s.setVersionDisabled(w, r, false)
}

func (s *Server) setVersionDisabled(w http.ResponseWriter, r *request, disabled bool) {
	var req kes.KeyVersionRequest
	if !readJSON(r, &req) || req.Version <= 0 || int64(req.Version) > 1<<32-1 {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	ok := s.replaceKey(w, r, func(old []byte) ([]byte, error) {
		next, changed, err := crypto.SetDisabledRecord(old, uint32(req.Version), disabled)
		if err != nil || !changed {
			return nil, err
		}
		return next, nil
	})
	if ok {
		writeOK(w)
	}
}

// listKeyVersions describes every version of the key as stored now.
func (s *Server) listKeyVersions(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	stored, err := r.state.keys.Read(ctx, name)
	if err != nil {
		s.storeError(ctx, w, r, err, errReadKey)
		return
	}
	key, err := crypto.ParseKey(stored)
	clear(stored)
	if err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errReadKey)
		return
	}
	defer key.Destroy()
	resp := kes.ListKeyVersionsResponse{Name: name, Current: int(key.Current())}
	for _, v := range key.Info() {
		resp.Versions = append(resp.Versions, kes.KeyVersion{
			Version:   int(v.Number),
			Algorithm: v.Type.String(),
			CreatedAt: v.CreatedAt,
			CreatedBy: kes.Identity(v.CreatedBy),
			Current:   v.Current,
			Disabled:  v.Disabled,
		})
	}
	writeJSON(w, resp)
}

// rewrapKey decrypts a ciphertext and encrypts its plaintext under the
// current (or the requested) version; the plaintext is never answered.
// The current version is the one this node knows: at once after a rotation
// through it, within cache.expiry.any after one through another node. A
// request naming a newer version than this node knows reads the key again.
func (s *Server) rewrapKey(w http.ResponseWriter, r *request) {
	var req kes.RewrapRequest
	if !readJSON(r, &req) || req.Version < 0 || int64(req.Version) > 1<<32-1 {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	ciphertext, version, ok := s.rewrap(w, r, &key, req.Ciphertext, req.Context, uint32(req.Version))
	if ok {
		writeJSON(w, kes.RewrapResponse{Ciphertext: ciphertext, Version: int(version)})
	}
}

// bulkRewrapKey is rewrapKey for up to maxRewrap ciphertexts: all are
// re-wrapped, or the request fails and answers none.
func (s *Server) bulkRewrapKey(w http.ResponseWriter, r *request) {
	var req kes.BulkRewrapRequest
	if !readJSON(r, &req) || req.Version < 0 || int64(req.Version) > 1<<32-1 {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	if len(req.Ciphertexts) > maxRewrap {
		writeError(w, kes.ErrTooManyCiphertexts)
		return
	}
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	resp := kes.BulkRewrapResponse{Ciphertexts: make([][]byte, 0, len(req.Ciphertexts))}
	for _, item := range req.Ciphertexts {
		ciphertext, version, ok := s.rewrap(w, r, &key, item.Ciphertext, item.Context, uint32(req.Version))
		if !ok {
			return
		}
		resp.Ciphertexts = append(resp.Ciphertexts, ciphertext)
		resp.Version = int(version)
	}
	writeJSON(w, resp)
}

// rewrap re-encrypts one ciphertext with *key, which it replaces if
// decryption had to read the key again.
func (s *Server) rewrap(w http.ResponseWriter, r *request, key *crypto.Key, ciphertext, associatedData []byte, number uint32) ([]byte, uint32, bool) {
	plaintext, k, _, err := s.decrypt(r, *key, ciphertext, associatedData, 0)
	*key = k
	if errors.Is(err, crypto.ErrDecrypt) {
		writeError(w, kes.ErrDecrypt)
		return nil, 0, false
	}
	if err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errDecrypt)
		return nil, 0, false
	}
	defer clear(plaintext)
	if number == 0 {
		number = key.Current()
	}
	out, _, ok := s.encrypt(w, r, *key, number, plaintext, associatedData, errEncrypt)
	return out, number, ok
}
