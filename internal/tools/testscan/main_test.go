package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/openkes/kes/internal/secretscan"
)

// TestRun: the plain output shows failed tests and result lines only; the
// scan covers every test's output, passed ones included, and the report
// does not repeat the secret.
func TestRun(t *testing.T) {
	const apiKey = "kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
	stream := strings.Join([]string{
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"    x_test.go:1: login with ` + apiKey + `\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    x_test.go:2: got 500\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad"}`,
		`{"Action":"output","Package":"p","Test":"TestCrash","Output":"panic: token openkes-test-root\n"}`,
		`{"Action":"output","Package":"p","Output":"PASS\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`# p [build failed]`,
	}, "\n")
	var out, raw bytes.Buffer
	findings, err := run(strings.NewReader(stream), &out, &raw, new(secretscan.Scanner))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"got 500", "panic: token", "FAIL\tp", "# p [build failed]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, unwanted := range []string{"TestOK", "login", "PASS"} {
		if strings.Contains(out.String(), unwanted) {
			t.Errorf("output shows %q of a passed test:\n%s", unwanted, out.String())
		}
	}
	if raw.String() != stream+"\n" {
		t.Errorf("raw stream changed:\n%s", raw.String())
	}
	// The zero Scanner knows the patterns only: the API key, not the
	// root token.
	if len(findings) != 1 || !strings.Contains(findings[0], "p TestOK: (API key)") || strings.Contains(findings[0], apiKey) {
		t.Errorf("findings = %q", findings)
	}
}
