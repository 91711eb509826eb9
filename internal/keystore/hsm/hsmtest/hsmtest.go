//go:build cgo

// Package hsmtest gives tests a real SoftHSM2 token of their own: a token
// directory in t.TempDir(), a softhsm2.conf that SOFTHSM2_CONF names, a token
// initialized with softhsm2-util, and wrapping keys created through PKCS#11.
// A missing SoftHSM2 fails the test with a hint; it never skips.
//
// SoftHSM2 reads SOFTHSM2_CONF when the library is initialized, once per
// process until the last store using it closes: tests using a token must
// not run in parallel (t.Setenv enforces it) and must close their stores.
//
// This package is imported by tests only.
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/openkes/kes/internal/peerbin"
)

// util is softhsm2-util, from the Debian package softhsm2.
var util = &peerbin.Peer{
	Name: "SoftHSM2 (softhsm2-util)", Env: "OPENKES_SOFTHSM2_UTIL",
	Script: "install-deb.sh", Args: []string{"softhsm2-util", "softhsm2"},
}

// Module returns the path of the SoftHSM2 PKCS#11 library:
// $OPENKES_SOFTHSM2_MODULE, or where Debian installs it.
func Module(t testing.TB) string {
	t.Helper()
	util.Bin(t) // installs the package, which holds the library too
	candidates := []string{os.Getenv("OPENKES_SOFTHSM2_MODULE"), "/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no SoftHSM2 PKCS#11 library found\nhint: run scripts/install-deb.sh softhsm2-util softhsm2 or set OPENKES_SOFTHSM2_MODULE")
	return ""
}

// Token is an initialized SoftHSM2 token.
type Token struct {
	Module string // the PKCS#11 library
	Dir    string // the token directory
	Conf   string // the softhsm2.conf that SOFTHSM2_CONF names
	Label  string
	PIN    string
	SOPIN  string
}

// New initializes a token labelled label in a new token directory and
// points SOFTHSM2_CONF at it for the rest of the test.
func New(t *testing.T, label string) *Token {
	t.Helper()
	bin := util.Bin(t)
	base := t.TempDir()
	tok := &Token{
		Module: Module(t), Dir: filepath.Join(base, "tokens"), Conf: filepath.Join(base, "softhsm2.conf"),
		Label: label, PIN: "1234-user", SOPIN: "5678-so",
	}
	if err := os.Mkdir(tok.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tok.Dir)
	if err := os.WriteFile(tok.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	out, err := exec.Command(bin, "--init-token", "--free", "--label", label, "--pin", tok.PIN, "--so-pin", tok.SOPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return tok
}

// CreateKey creates an AES-256 token key labelled label, usable for
// encryption and decryption and sensitive; extractable as asked.
func (tok *Token) CreateKey(t testing.TB, label string, extractable bool) {
	t.Helper()
	tok.session(t, func(p *pkcs11.Ctx, h pkcs11.SessionHandle, _ uint) error {
		_, err := p.GenerateKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, extractable),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		})
		return err
	})
}

// DeleteKey destroys the token keys labelled label.
func (tok *Token) DeleteKey(t testing.TB, label string) {
	t.Helper()
	tok.session(t, func(p *pkcs11.Ctx, h pkcs11.SessionHandle, _ uint) error {
		if err := p.FindObjectsInit(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
			return err
		}
		objs, _, err := p.FindObjects(h, 16)
		p.FindObjectsFinal(h)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := p.DestroyObject(h, o); err != nil {
				return err
			}
		}
		return nil
	})
}

// DropSessions closes every session of the process on the token
// (C_CloseAllSessions), as a token that was removed and put back: the
// sessions of the stores using it become invalid and their login is gone.
func (tok *Token) DropSessions(t testing.TB) {
	t.Helper()
	tok.withLibrary(t, func(p *pkcs11.Ctx) error {
		slot, err := tok.slot(p)
		if err != nil {
			return err
		}
		return p.CloseAllSessions(slot)
	})
}

// Finalize finalizes the PKCS#11 library for the whole process
// (C_Finalize), as a library reset under the stores using it: every call
// then fails with CKR_CRYPTOKI_NOT_INITIALIZED until it is initialized
// again. PKCS#11 leaves a C_Finalize during other calls undefined (SoftHSM2
// crashes): call it only while no store call runs.
func (tok *Token) Finalize(t testing.TB) {
	t.Helper()
	p := pkcs11.New(tok.Module)
	if p == nil {
		t.Fatalf("cannot load %s", tok.Module)
	}
	defer p.Destroy()
	if err := p.Finalize(); err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		t.Fatalf("C_Finalize: %v", err)
	}
}

// Slot returns the number of the slot holding the token.
func (tok *Token) Slot(t testing.TB) uint {
	t.Helper()
	var slot uint
	tok.withLibrary(t, func(p *pkcs11.Ctx) (err error) {
		slot, err = tok.slot(p)
		return err
	})
	return slot
}

// session runs fn on a logged-in read-write session.
func (tok *Token) session(t testing.TB, fn func(p *pkcs11.Ctx, h pkcs11.SessionHandle, slot uint) error) {
	t.Helper()
	tok.withLibrary(t, func(p *pkcs11.Ctx) error {
		slot, err := tok.slot(p)
		if err != nil {
			return err
		}
		h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return err
		}
		defer p.CloseSession(h)
		if err := p.Login(h, pkcs11.CKU_USER, tok.PIN); err != nil && err != pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			return err
		}
		return fn(p, h, slot)
	})
}

// withLibrary runs fn with the library initialized, finalizing it after
// only if it was not initialized before (a store of the test uses it).
func (tok *Token) withLibrary(t testing.TB, fn func(p *pkcs11.Ctx) error) {
	t.Helper()
	p := pkcs11.New(tok.Module)
	if p == nil {
		t.Fatalf("cannot load %s", tok.Module)
	}
	defer p.Destroy()
	err := p.Initialize()
	ours := err == nil
	if err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatalf("C_Initialize: %v", err)
	}
	if ours {
		defer p.Finalize()
	}
	if err := fn(p); err != nil {
		t.Fatalf("token %q: %v", tok.Label, err)
	}
}

func (tok *Token) slot(p *pkcs11.Ctx) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		info, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(info.Label, " \x00") == tok.Label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token labelled %q", tok.Label)
}
