package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sizes of the KES replies the bare server imitates when it is not told
// otherwise: a 32-byte data key is 44 base64 characters, its current-format
// ciphertext 104.
const (
	generateOverhead    = len(`{"plaintext":"","ciphertext":""}` + "\n")
	decryptOverhead     = len(`{"plaintext":""}` + "\n")
	defaultGenerateSize = generateOverhead + 44 + 104
	defaultDecryptSize  = decryptOverhead + 44
)

// maxBareBody bounds the request bodies the bare server reads, like KES's
// own limit for these routes.
const maxBareBody = 1 << 20

// runBare is "kesload bare": a plain net/http TLS server with the TLS
// settings of KES that answers generate and decrypt with fixed replies.
func runBare(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kesload bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7373", "listen address, a loopback ip:port")
	certFile := fs.String("cert", "", "server certificate (PEM)")
	keyFile := fs.String("key", "", "server private key (PEM)")
	genSize := fs.Int("generate-size", defaultGenerateSize, "body size of the generate reply")
	decSize := fs.Int("decrypt-size", defaultDecryptSize, "body size of the decrypt reply")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	gen, dec, err := bareReplies(*genSize, *decSize)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	srv := &http.Server{
		Handler:           bareHandler(gen, dec),
		TLSConfig:         bareTLSConfig(cert),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          log.New(stderr, "bare: ", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			srv.Close()
		}
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// bareTLSConfig returns the TLS settings KES uses with tls.auth off: TLS
// 1.2 or newer, h2 and http/1.1, a client certificate required but not
// verified.
func bareTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
	}
}

// bareHandler answers POST generate and decrypt of any key name with the
// fixed replies gen and dec, after reading the whole request body.
func bareHandler(gen, dec []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/key/generate/{name}", fixedReply(gen))
	mux.HandleFunc("POST /v1/key/decrypt/{name}", fixedReply(dec))
	return mux
}

func fixedReply(body []byte) http.HandlerFunc {
	contentLength := []string{strconv.Itoa(len(body))}
	contentType := []string{"application/json"}
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBareBody)); err != nil {
			http.Error(w, "bad request body", http.StatusBadRequest)
			return
		}
		h := w.Header()
		h["Content-Type"] = contentType
		h["Content-Length"] = contentLength
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}
}

// bareReplies returns JSON replies of exactly genSize and decSize bytes,
// shaped like KES's: {"plaintext":"…","ciphertext":"…"}\n and
// {"plaintext":"…"}\n with a 44-character plaintext.
func bareReplies(genSize, decSize int) (gen, dec []byte, err error) {
	const maxSize = 1 << 16
	const plaintext = 44
	genFill := genSize - generateOverhead - plaintext
	decFill := decSize - decryptOverhead
	if genFill < 0 || genSize > maxSize {
		return nil, nil, fmt.Errorf("bare: generate reply size %d out of range [%d, %d]", genSize, genSize-genFill, maxSize)
	}
	if decFill < 0 || decSize > maxSize {
		return nil, nil, fmt.Errorf("bare: decrypt reply size %d out of range [%d, %d]", decSize, decSize-decFill, maxSize)
	}
	gen = []byte(`{"plaintext":"` + strings.Repeat("A", plaintext) + `","ciphertext":"` + strings.Repeat("B", genFill) + `"}` + "\n")
	dec = []byte(`{"plaintext":"` + strings.Repeat("A", decFill) + `"}` + "\n")
	return gen, dec, nil
}

// checkLoopback returns an error unless addr is ip:port with a loopback ip.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: only loopback addresses are allowed", addr)
	}
	return nil
}
