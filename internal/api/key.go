package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/crypto"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/names"
)

// Errors of the key API that are not SDK values (spec api.md §2).
var (
	errCreateKey   = kes.NewError(http.StatusBadGateway, "failed to create key")
	errReadKey     = kes.NewError(http.StatusBadGateway, "failed to read key")
	errDeleteKey   = kes.NewError(http.StatusBadGateway, "failed to delete key")
	errListKeys    = kes.NewError(http.StatusBadGateway, "failed to list keys")
	errGenerateKey = kes.NewError(http.StatusInternalServerError, "failed to generate encryption key")
	errEncrypt     = kes.NewError(http.StatusInternalServerError, "failed to encrypt plaintext")
	errNewKey      = kes.NewError(http.StatusInternalServerError, "failed to create key")
	errDecrypt     = kes.NewError(http.StatusInternalServerError, "failed to decrypt ciphertext")

	// errTimeout answers a request whose key store call outlived the
	// route's timeout: the answer of upstream's per-route timeout handler
	// (≤ 2023-10, spec api.md §5), which clients retry.
	errTimeout = kes.NewError(http.StatusServiceUnavailable, "request timeout exceeded")
)

// The byte-string fields of the request bodies, for readBytesJSON.
var (
	generateFields = []string{"context"}
	encryptFields  = []string{"plaintext", "context"}
	decryptFields  = []string{"ciphertext", "context"}
	hmacFields     = []string{"message"}
)

// keyName returns the validated key name of the request, or writes the
// error and returns false.
func keyName(w http.ResponseWriter, r *request) (string, bool) {
	if !names.Valid(r.Resource) {
		writeError(w, kes.ErrInvalidKeyName(r.Resource))
		return "", false
	}
	return r.Resource, true
}

// storeError writes the answer for a key store error: not-found and exists
// are the client's business; a call that the route's timeout ended (ctx is
// the context of the call) answers upstream's timeout error; anything else
// is logged and answered with the generic failure, so no store detail
// reaches the client.
func (s *Server) storeError(ctx context.Context, w http.ResponseWriter, r *request, err error, failure *kes.Error) {
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		writeError(w, kes.ErrKeyNotFound)
	case errors.Is(err, keystore.ErrExists):
		writeError(w, kes.ErrKeyExists)
	case ctx.Err() != nil:
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errTimeout)
	case errors.Is(err, keystore.ErrOffline):
		s.offline.log(s.errLog, err.Error(), reqAttrs(r))
		writeError(w, failure)
	default:
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, failure)
	}
}

// getKey reads the named key through the cache or writes the error.
func (s *Server) getKey(w http.ResponseWriter, r *request) (crypto.Key, bool) {
	name, ok := keyName(w, r)
	if !ok {
		return crypto.Key{}, false
	}
	if key, ok := r.state.keys.Lookup(name); ok {
		return key, true
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	key, err := r.state.keys.Get(ctx, name)
	if err != nil {
		s.storeError(ctx, w, r, err, errReadKey)
		return crypto.Key{}, false
	}
	return key, true
}

func (s *Server) createKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	key, err := crypto.GenerateKey(s.keyType, r.Identity.String(), time.Now().UTC(), s.rand)
	if err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errNewKey)
		return
	}
	s.storeKey(w, r, name, key)
}

// storeKey writes a new key record under name.
func (s *Server) storeKey(w http.ResponseWriter, r *request, name string, key crypto.Key) {
	b, err := key.MarshalBinary()
	if err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errNewKey)
		return
	}
	ctx, cancel := r.storeContext()
	defer cancel()
	if err := r.state.keys.Create(ctx, name, b); err != nil {
		s.storeError(ctx, w, r, err, errCreateKey)
		return
	}
	writeOK(w)
}

func (s *Server) importKey(w http.ResponseWriter, r *request) {
	name, ok := keyName(w, r)
	if !ok {
		return
	}
	var req kes.ImportKeyRequest
	if !readJSON(r, &req) {
		writeError(w, kes.ErrInvalidImportBody)
		return
	}
	defer clear(req.Key)
	t, err := crypto.ParseCipher(req.Cipher)
	if err != nil {
		writeError(w, kes.Errorf(http.StatusNotAcceptable, "algorithm '%s' is not supported", req.Cipher))
		return
	}
	secret, err := crypto.NewSecretKey(t, req.Key)
	if err != nil {
		writeError(w, kes.Errorf(http.StatusNotAcceptable, "invalid key size for '%s'", req.Cipher))
		return
	}
	hmacKey, err := crypto.GenerateHMACKey(s.rand)
	if err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errNewKey)
		return
	}
	s.storeKey(w, r, name, crypto.Key{
		Secret:    secret,
		HMAC:      &hmacKey,
		CreatedAt: time.Now().UTC(),
		CreatedBy: r.Identity.String(),
	})
}

func (s *Server) describeKey(w http.ResponseWriter, r *request) {
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	resp := kes.DescribeKeyResponse{
		Name:      r.Resource,
		Algorithm: key.Secret.Type().String(),
		CreatedAt: key.CreatedAt,
		CreatedBy: kes.Identity(key.CreatedBy),
	}
	if key.Rotated() {
		resp.Version = strconv.FormatUint(uint64(key.Current()), 10)
	}
	writeJSON(w, resp)
}

// listKeys answers every key name with the prefix in one response.
//
// Upstream answers at most 1024 names and a continue_at that its own SDK
// sends back as the next *prefix*, so listing more than 1024 keys never
// worked (api.md §4.6). Answering all names keeps every client correct. A
// trailing '*' marks a prefix, as for policies and identities (upstream
// keeps it and matches nothing).
//
// A listing of more than one page is streamed page by page, so that a
// million names never sit in memory at once (issue 12); its body is the
// same JSON. A store error after the first page can no longer change the
// status: the body then ends where the names stopped, without closing the
// JSON, so a client sees a broken body, never a short list (and the audit
// log still gets the request).
func (s *Server) listKeys(w http.ResponseWriter, r *request) {
	prefix := r.Resource
	if !names.ValidPattern(prefix) {
		writeError(w, kes.ErrInvalidPattern(prefix))
		return
	}
	prefix = strings.TrimSuffix(prefix, "*")
	ctx, cancel := r.storeContext()
	defer cancel()
	// Tombstones (soft-deleted keys) are never listed here: an empty
	// prefix starts after them, and pages are filtered.
	first := ""
	if prefix == "" {
		first = firstName
	}
	page, next, err := r.state.keys.List(ctx, prefix, first, keystore.ListPageSize)
	if err != nil {
		s.storeError(ctx, w, r, err, errListKeys)
		return
	}
	page = withoutTombstones(page)
	if next == "" {
		writeJSON(w, kes.ListKeysResponse{Names: append([]string{}, page...)})
		return
	}
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(`{"names":[`)
	for sep := ""; ; {
		if len(page) > 0 {
			b, _ := json.Marshal(page) // strings only: cannot fail
			bw.WriteString(sep)
			bw.Write(b[1 : len(b)-1])
			sep = ","
		}
		if next == "" {
			break
		}
		cont := next
		if page, next, err = r.state.keys.List(ctx, prefix, cont, keystore.ListPageSize); err != nil {
			// The status is sent: end the body without closing the
			// JSON, so that no client takes it for the whole list.
			s.errLog.Error(err.Error(), reqAttrs(r))
			bw.Flush()
			return
		}
		page = withoutTombstones(page)
		if next == cont { // a store that does not advance: stop
			next = ""
		}
	}
	bw.WriteString("]}\n")
	bw.Flush()
}

func (s *Server) generateKey(w http.ResponseWriter, r *request) {
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	var req kes.GenerateKeyRequest
	// MinIO sends no body at all; a chunked body is decoded even if empty
	// (then it is invalid), as upstream.
	if r.ContentLength != 0 && !readBytesJSON(r, &req, generateFields, &req.Version, &req.Context) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	dek := make([]byte, 32)
	if err := readRandom(s.rand, dek); err != nil {
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errGenerateKey)
		return
	}
	defer clear(dek)
	ciphertext, version, ok := s.encrypt(w, r, key, parseVersion(req.Version), dek, req.Context, errGenerateKey)
	if !ok {
		return
	}
	writeBytesJSON(w, bytesField{name: "plaintext", value: dek}, bytesField{name: "ciphertext", value: ciphertext}, version)
}

func (s *Server) encryptKey(w http.ResponseWriter, r *request) {
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	var req kes.EncryptKeyRequest
	if !readBytesJSON(r, &req, encryptFields, &req.Version, &req.Plaintext, &req.Context) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	defer clear(req.Plaintext)
	ciphertext, version, ok := s.encrypt(w, r, key, parseVersion(req.Version), req.Plaintext, req.Context, errEncrypt)
	if !ok {
		return
	}
	writeBytesJSON(w, bytesField{name: "ciphertext", value: ciphertext}, version)
}

func (s *Server) decryptKey(w http.ResponseWriter, r *request) {
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	var req kes.DecryptKeyRequest
	if !readBytesJSON(r, &req, decryptFields, &req.Version, &req.Ciphertext, &req.Context) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	plaintext, key, used, err := s.decrypt(r, key, req.Ciphertext, req.Context, parseVersion(req.Version))
	if errors.Is(err, crypto.ErrDecrypt) {
		writeError(w, kes.ErrDecrypt)
		return
	}
	if err != nil { // a key this build cannot use (FIPS mode and ChaCha20)
		s.errLog.Error(err.Error(), reqAttrs(r))
		writeError(w, errDecrypt)
		return
	}
	defer clear(plaintext)
	writeBytesJSON(w, bytesField{name: "plaintext", value: plaintext}, versionField(key, used))
}

func (s *Server) hmacKey(w http.ResponseWriter, r *request) {
	key, ok := s.getKey(w, r)
	if !ok {
		return
	}
	var req kes.HMACRequest
	// The HMAC key does not rotate: the version is ignored.
	if !readBytesJSON(r, &req, hmacFields, nil, &req.Message) {
		writeError(w, kes.ErrInvalidBody)
		return
	}
	if key.HMAC == nil {
		writeError(w, kes.ErrNoHMAC)
		return
	}
	writeBytesJSON(w, bytesField{name: "hmac", value: key.HMAC.Sum(req.Message)})
}
