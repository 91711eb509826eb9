package kes

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrIncorrectPassword is returned by [LoadClientCertificate] when an
// encrypted private key cannot be decrypted with the password.
var ErrIncorrectPassword = errors.New("incorrect password")

// maxPEMFileSize bounds the certificate and key files read by
// [LoadClientCertificate].
const maxPEMFileSize = 1 << 20

// LoadClientCertificate loads a client certificate for [WithCertificate]
// from PEM files. certFile holds one or more CERTIFICATE blocks (other
// blocks are ignored), keyFile the first "PRIVATE KEY" or "* PRIVATE KEY"
// block. If that block is a legacy encrypted PEM block (RFC 1423, as
// "kes identity new --encrypt" writes), password is called for the password;
// a wrong one gives [ErrIncorrectPassword]. password may be nil when the
// key is not encrypted.
func LoadClientCertificate(certFile, keyFile string, password func() ([]byte, error)) (tls.Certificate, error) {
	certPEM, err := readPEMFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	var chain []byte
	for rest := certPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, pem.EncodeToMemory(block)...)
		}
	}
	if len(chain) == 0 {
		return tls.Certificate{}, fmt.Errorf("kes: '%s' contains no certificate", certFile)
	}
	keyPEM, err := readPEMFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	defer clear(keyPEM)
	block, err := privateKeyBlock(keyPEM, keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	encrypted := isEncryptedPEMBlock(block)
	if encrypted {
		if block, err = decryptPEMBlock(block, password); err != nil {
			return tls.Certificate{}, err
		}
		defer clear(block.Bytes)
	}
	keyDER := pem.EncodeToMemory(block)
	defer clear(keyDER)
	cert, err := tls.X509KeyPair(chain, keyDER)
	if err != nil {
		if encrypted { // a wrong password may still pass the padding check
			return tls.Certificate{}, ErrIncorrectPassword
		}
		return tls.Certificate{}, fmt.Errorf("kes: load client certificate: %w", err)
	}
	return cert, nil
}

func readPEMFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("kes: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("kes: %w", err)
	}
	if len(b) > maxPEMFileSize {
		return nil, fmt.Errorf("kes: '%s' is larger than %d bytes", name, maxPEMFileSize)
	}
	return b, nil
}

func privateKeyBlock(data []byte, name string) (*pem.Block, error) {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return nil, fmt.Errorf("kes: '%s' contains no private key", name)
		}
		if block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY") {
			return block, nil
		}
	}
}

//lint:ignore SA1019 kes CLIs write legacy encrypted PEM keys; reading them is required.
func isEncryptedPEMBlock(b *pem.Block) bool { return x509.IsEncryptedPEMBlock(b) }

func decryptPEMBlock(block *pem.Block, password func() ([]byte, error)) (*pem.Block, error) {
	if password == nil {
		return nil, errors.New("kes: private key is encrypted but no password was given")
	}
	pw, err := password()
	if err != nil {
		return nil, fmt.Errorf("kes: read password: %w", err)
	}
	defer clear(pw)
	//lint:ignore SA1019 see isEncryptedPEMBlock.
	der, err := x509.DecryptPEMBlock(block, pw)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, ErrIncorrectPassword
	}
	if err != nil {
		return nil, fmt.Errorf("kes: decrypt private key: %w", err)
	}
	return &pem.Block{Type: block.Type, Bytes: der}, nil
}
