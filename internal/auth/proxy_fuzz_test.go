package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/vectors"
)

// FuzzProxyHeader feeds the forwarded-certificate parser every form a
// proxy sends, damaged forms and garbage. It must never panic, fail only
// with the documented errors, and accept only values whose first
// certificate parses again from its plain base64 form to the same
// identity, with a CA at every later position.
func FuzzProxyHeader(f *testing.F) {
	for _, name := range []string{"ecdsa-p256", "ed25519", "rsa-2048", "chain-leaf-ca"} {
		pemText := string(vectors.ReadFile(f, "identities/"+name+".crt"))
		f.Add(nginxEscape(pemText))
		f.Add(pemText)
		f.Add(strings.ReplaceAll(pemText, "\n", " "))
		f.Add(nginxEscape(strings.ReplaceAll(pemText, "+", " ")))
		certs, err := auth.ParseForwardedCert(nginxEscape(pemText))
		if err != nil {
			f.Fatalf("seed %s: %v", name, err)
		}
		b64 := base64.StdEncoding.EncodeToString(certs[0].Raw)
		f.Add(b64)
		f.Add(strings.ReplaceAll(b64, "+", " "))
		f.Add(b64 + "," + b64)
		f.Add(strings.TrimRight(b64, "="))
	}
	for _, s := range []string{"", " ", ",", "%", "%zz", "-----BEGIN", "-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE----------END CERTIFICATE-----", "MII", "====", "unknown"} {
		f.Add(s)
	}
	known := []error{auth.ErrProxyNoCert, auth.ErrProxyManyCerts, auth.ErrProxyInvalidCert, auth.ErrCAClientCert}
	p := auth.NewProxy(auth.ProxyConfig{Identities: []kes.Identity{"proxy"}, Header: "X-Tls-Client-Cert"})
	f.Fuzz(func(t *testing.T, value string) {
		certs, err := auth.ParseForwardedCert(value)
		fwd, ierr := p.Identify([]string{value})
		if err != nil {
			if !isOneOf(err, known) {
				t.Fatalf("ParseForwardedCert: undocumented error %v", err)
			}
			if ierr == nil {
				t.Fatalf("Identify accepted what ParseForwardedCert refused (%v)", err)
			}
			return
		}
		if len(certs) == 0 || certs[0] == nil {
			t.Fatal("ParseForwardedCert: no certificate and no error")
		}
		for _, c := range certs[1:] {
			if !c.IsCA {
				t.Fatal("ParseForwardedCert: a second client certificate accepted")
			}
		}
		again, err := auth.ParseForwardedCert(base64.StdEncoding.EncodeToString(certs[0].Raw))
		if err != nil || kes.IdentityOf(again[0]) != kes.IdentityOf(certs[0]) {
			t.Fatalf("the accepted certificate does not parse again: %v", err)
		}
		if certs[0].IsCA {
			if !errors.Is(ierr, auth.ErrCAClientCert) {
				t.Fatalf("Identify of a CA certificate: %v", ierr)
			}
			return
		}
		if ierr != nil || fwd.Identity != kes.IdentityOf(certs[0]) {
			t.Fatalf("Identify = %q, %v; want the parsed certificate's identity", fwd.Identity, ierr)
		}
	})
}

func isOneOf(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
