// Command testscan reads the output of `go test -json` on stdin, prints it
// as `go test` without -v would (the output of failed tests, build errors
// and the per-package result lines), optionally saves the raw stream, and
// then checks every line of output of every test, passed or failed, for
// secrets (internal/secretscan): the log lines, error bodies and panics the
// suites produce must hold no key bytes, API keys, Vault tokens or AppRole
// secret IDs. It exits with status 1 if it found one, printing where, with
// the secret itself replaced.
//
// scripts/test.sh runs it:
//
//	go test -json ./... | go run ./internal/tools/testscan -save test.json
//
// It reads the fixture secrets from the repository around the working
// directory.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/openkes/kes/internal/secretscan"
)

func main() {
	save := flag.String("save", "", "also write the raw `go test -json` stream to this file")
	flag.Parse()
	root, err := secretscan.Root()
	if err != nil {
		fail(err)
	}
	scanner, err := secretscan.Load(root)
	if err != nil {
		fail(err)
	}
	var raw io.Writer = io.Discard
	if *save != "" {
		f, err := os.Create(*save)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		raw = f
	}
	// Unbuffered: each result line shows as its package ends.
	findings, err := run(os.Stdin, os.Stdout, raw, scanner)
	if err != nil {
		fail(err)
	}
	if len(findings) > 0 {
		fmt.Fprintf(os.Stderr, "testscan: %d line(s) of test output hold a secret:\n", len(findings))
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testscan:", err)
	os.Exit(2)
}

// event is a test2json event (go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// run copies the stream in to raw, prints it to out as plain `go test`
// would, and returns a line per secret found ("package Test: line").
// Lines that are not JSON (a `go test` that failed before running) are
// printed and scanned as they are.
func run(in io.Reader, out, raw io.Writer, scanner *secretscan.Scanner) ([]string, error) {
	var (
		findings []string
		pending  = map[[2]string][]string{} // output of running tests
	)
	flush := func(key [2]string) {
		for _, line := range pending[key] {
			io.WriteString(out, line)
		}
		delete(pending, key)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Text()
		raw.Write(append(sc.Bytes(), '\n'))
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal(sc.Bytes(), &e) != nil {
			e = event{Action: "output", Output: line + "\n"}
		}
		if e.Output != "" {
			if f, ok := scanner.ScanLine(e.Output); ok {
				findings = append(findings, fmt.Sprintf("%s %s: (%s) %s", e.Package, e.Test, f.Name, f.Line))
			}
		}
		key := [2]string{e.Package, e.Test}
		switch {
		case e.Action == "output" && e.Test != "":
			pending[key] = append(pending[key], e.Output)
		case e.Action == "output" || e.Action == "build-output":
			if e.Output != "PASS\n" {
				io.WriteString(out, e.Output)
			}
		case e.Action == "fail" && e.Test != "":
			flush(key)
		case e.Action == "pass" || e.Action == "skip":
			delete(pending, key)
		case e.Action == "fail":
			// The package failed (a panic or a timeout may end a test
			// without its own event): show whatever its tests printed.
			for k := range pending {
				if k[0] == e.Package {
					flush(k)
				}
			}
		}
	}
	for k := range pending {
		flush(k)
	}
	return findings, sc.Err()
}
