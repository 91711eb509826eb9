package kes_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/openkes/kes"
)

// fakeKES is a tiny in-memory stand-in for a KES server so that the
// examples run. It is not the OpenKES server.
type fakeKES struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (f *fakeKES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(e *kes.Error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(kes.ErrorResponse{Message: e.Msg})
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/v1/key/"), "/", 2)
	if len(parts) != 2 {
		http.NotFound(w, r)
		return
	}
	op, name := parts[0], parts[1]
	key, ok := f.keys[name]
	switch {
	case op == "create" && ok:
		fail(kes.ErrKeyExists)
	case op == "create":
		f.keys[name] = make([]byte, 32)
		rand.Read(f.keys[name])
	case op == "list":
		var names []string
		for n := range f.keys {
			if name == "*" || strings.HasPrefix(n, name) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		reply(kes.ListKeysResponse{Names: names})
	case !ok:
		fail(kes.ErrKeyNotFound)
	case op == "generate":
		var req kes.GenerateKeyRequest
		json.NewDecoder(r.Body).Decode(&req)
		dek := make([]byte, 32)
		rand.Read(dek)
		reply(kes.GenerateKeyResponse{Plaintext: dek, Ciphertext: seal(key, dek, req.Context)})
	case op == "decrypt":
		var req kes.DecryptKeyRequest
		json.NewDecoder(r.Body).Decode(&req)
		plaintext, err := open(key, req.Ciphertext, req.Context)
		if err != nil {
			fail(kes.ErrDecrypt)
			return
		}
		reply(kes.DecryptKeyResponse{Plaintext: plaintext})
	default:
		http.NotFound(w, r)
	}
}

func seal(key, plaintext, associated []byte) []byte {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCMWithRandomNonce(block)
	return aead.Seal(nil, nil, plaintext, associated)
}

func open(key, ciphertext, associated []byte) ([]byte, error) {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCMWithRandomNonce(block)
	return aead.Open(nil, nil, ciphertext, associated)
}

// startServer starts a fake KES server and returns its endpoint and the CA
// pool that verifies its certificate.
func startServer() (endpoint string, rootCAs *x509.CertPool, stop func()) {
	srv := httptest.NewUnstartedServer(&fakeKES{keys: map[string][]byte{}})
	srv.EnableHTTP2 = true
	srv.StartTLS()
	rootCAs = x509.NewCertPool()
	rootCAs.AddCert(srv.Certificate())
	return srv.URL, rootCAs, srv.Close
}

func ExampleNewClient() {
	endpoint, rootCAs, stop := startServer()
	defer stop()

	apiKey, err := kes.ParseAPIKey("kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
	if err != nil {
		log.Fatal(err)
	}
	client, err := kes.NewClient([]string{endpoint}, kes.WithAPIKey(apiKey), kes.WithRootCAs(rootCAs))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	if err := client.CreateKey(ctx, "my-key"); err != nil {
		log.Fatal(err)
	}
	err = client.CreateKey(ctx, "my-key")
	fmt.Println(errors.Is(err, kes.ErrKeyExists))
	// Output: true
}

func ExampleClient_GenerateKey() {
	endpoint, rootCAs, stop := startServer()
	defer stop()
	apiKey, _ := kes.GenerateAPIKey(nil)
	client, err := kes.NewClient([]string{endpoint}, kes.WithAPIKey(apiKey), kes.WithRootCAs(rootCAs))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := client.CreateKey(ctx, "my-key"); err != nil {
		log.Fatal(err)
	}

	// Encrypt data with dek.Plaintext, store dek.Ciphertext next to it and
	// forget the plaintext key.
	associated := []byte("bucket/object")
	dek, err := client.GenerateKey(ctx, "my-key", associated)
	if err != nil {
		log.Fatal(err)
	}

	// Later: recover the data key from its ciphertext.
	plaintext, err := client.Decrypt(ctx, "my-key", dek.Ciphertext, associated)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(dek.Plaintext), bytes.Equal(plaintext, dek.Plaintext))

	// The associated data must match.
	_, err = client.Decrypt(ctx, "my-key", dek.Ciphertext, []byte("other/object"))
	fmt.Println(errors.Is(err, kes.ErrDecrypt))
	// Output:
	// 32 true
	// true
}

func ExampleClient_ListKeys() {
	endpoint, rootCAs, stop := startServer()
	defer stop()
	apiKey, _ := kes.GenerateAPIKey(nil)
	client, err := kes.NewClient([]string{endpoint}, kes.WithAPIKey(apiKey), kes.WithRootCAs(rootCAs))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"app-1", "app-2", "db-1"} {
		if err := client.CreateKey(ctx, name); err != nil {
			log.Fatal(err)
		}
	}

	for name, err := range client.ListKeys(ctx, "app-*") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name)
	}
	// Output:
	// app-1
	// app-2
}

func ExampleClient_DescribeKey() {
	endpoint, rootCAs, stop := startServer()
	defer stop()
	apiKey, _ := kes.GenerateAPIKey(nil)
	client, err := kes.NewClient([]string{endpoint}, kes.WithAPIKey(apiKey), kes.WithRootCAs(rootCAs))
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.DescribeKey(context.Background(), "missing-key")
	if errors.Is(err, kes.ErrKeyNotFound) {
		fmt.Println("no such key:", err)
	}
	// Output: no such key: key does not exist
}
