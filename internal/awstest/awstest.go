// Package awstest runs real AWS emulators for tests: kumo
// (github.com/sivchari/kumo), whose Secrets Manager the aws key store talks
// to, and local-kms (github.com/nsmithuk/local-kms), a KMS that checks what
// it is asked. Each runs as a process on a free loopback port and is
// stopped by t.Cleanup.
//
// The binaries are $OPENKES_KUMO_BIN and $OPENKES_LOCALKMS_BIN or, if those
// are unset, the ones scripts/install-kumo.sh and scripts/install-local-kms.sh
// build and cache. If neither yields a binary the test fails with a message
// saying how to get one; it never skips.
//
// This package is imported by tests only.
package awstest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/kes/internal/peerbin"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Credentials the test clients sign with. kumo does not check signatures;
// local-kms does not either, but both need a well-formed request.
const (
	AccessKey = "AKIAOPENKESTEST00001"
	SecretKey = "openkes-test-secret-key"
)

// Region is the region of every emulator started here.
const Region = "us-east-1"

// AccountID is the account local-kms puts into its key ARNs.
const AccountID = "111122223333"

const startTimeout = 60 * time.Second

var (
	kumoPeer     = &peerbin.Peer{Name: "kumo", Env: "OPENKES_KUMO_BIN", Script: "install-kumo.sh"}
	localKMSPeer = &peerbin.Peer{Name: "local-kms", Env: "OPENKES_LOCALKMS_BIN", Script: "install-local-kms.sh"}
)

// KumoBin returns the path of the kumo binary or fails t.
func KumoBin(t testing.TB) string { t.Helper(); return kumoPeer.Bin(t) }

// LocalKMSBin returns the path of the local-kms binary or fails t.
func LocalKMSBin(t testing.TB) string { t.Helper(); return localKMSPeer.Bin(t) }

// Server is a running emulator process.
type Server struct {
	Addr string // 127.0.0.1:port

	name    string
	logFile string
	cmd     *exec.Cmd
	exited  chan struct{}
	stop    sync.Once
}

// URL returns http://127.0.0.1:port.
func (s *Server) URL() string { return "http://" + s.Addr }

// Log returns the tail of the process's output.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return peerbin.LastLines(string(b), 40)
}

// Stop stops the process and waits for it to exit. It is safe to call more
// than once; t.Cleanup calls it.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// StartKumo starts kumo on a free loopback port.
func StartKumo(t testing.TB) *Server {
	t.Helper()
	bin := KumoBin(t)
	return start(t, "kumo", bin, func(port int) []string {
		return []string{"KUMO_HOST=127.0.0.1", "KUMO_PORT=" + strconv.Itoa(port), "KUMO_LOG_LEVEL=warn"}
	})
}

// StartLocalKMS starts local-kms on a free port, with its database in a
// temporary directory. local-kms binds every interface (it has no host
// setting); tests talk to it on loopback only.
func StartLocalKMS(t testing.TB) *Server {
	t.Helper()
	bin := LocalKMSBin(t)
	dir := t.TempDir()
	return start(t, "local-kms", bin, func(port int) []string {
		return []string{"PORT=" + strconv.Itoa(port), "KMS_REGION=" + Region, "KMS_ACCOUNT_ID=" + AccountID,
			"KMS_DATA_PATH=" + filepath.Join(dir, "data"), "KMS_SEED_PATH=" + filepath.Join(dir, "no-seed.yaml")}
	})
}

// start runs bin with the environment env(port) for a free port, retrying
// with another port if the process exits before it answers (the port was
// taken between our probe and its listen).
func start(t testing.TB, name, bin string, env func(port int) []string) *Server {
	t.Helper()
	dir := t.TempDir()
	var lastLog string
	for try := range 3 {
		port := freePort(t)
		s := &Server{
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			name:    name,
			logFile: filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, try)),
			exited:  make(chan struct{}),
		}
		log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		s.cmd = exec.Command(bin)
		s.cmd.Dir = dir
		s.cmd.Env = append(cleanEnv(dir), env(port)...)
		s.cmd.Stdout, s.cmd.Stderr = log, log
		if err := s.cmd.Start(); err != nil {
			log.Close()
			t.Fatalf("awstest: start %s: %v", bin, err)
		}
		go func() {
			s.cmd.Wait()
			log.Close()
			close(s.exited)
		}()
		if s.waitReady() {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
		lastLog = s.Log()
	}
	t.Fatalf("awstest: %s did not start:\n%s", name, lastLog)
	return nil
}

// waitReady polls the server until it answers HTTP. The process runs on the
// real clock, so polling with a deadline is the only way to wait for it.
// It returns false if the process exits first or the deadline passes.
func (s *Server) waitReady() bool {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(s.URL() + "/")
		if err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case <-s.exited:
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cleanEnv is the environment without AWS_*, KUMO_* and KMS_* variables and
// with HOME in dir, so nothing from the developer's setup leaks in.
func cleanEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "AWS_"), strings.HasPrefix(kv, "KUMO_"), strings.HasPrefix(kv, "KMS_"),
			strings.HasPrefix(kv, "HOME="), strings.HasPrefix(kv, "PORT="):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir)
}

// config is the SDK configuration of the test clients: static test
// credentials and the SDK's standard retries. Retries stay on because the
// SDK now and then loses a response on a connection its transport closed
// (aws/aws-sdk-go-v2#2737) and retries that (net.ErrClosed) by default.
func config() awssdk.Config {
	return awssdk.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	}
}

// SecretsManager returns a Secrets Manager client for the server (kumo),
// for tests to set up and inspect secrets behind the store's back.
func (s *Server) SecretsManager() *secretsmanager.Client {
	return secretsmanager.NewFromConfig(config(), func(o *secretsmanager.Options) {
		o.BaseEndpoint = awssdk.String(s.URL())
	})
}

// KMS returns a KMS client for the server (local-kms).
func (s *Server) KMS() *kms.Client {
	return kms.NewFromConfig(config(), func(o *kms.Options) {
		o.BaseEndpoint = awssdk.String(s.URL())
	})
}

// CreateKMSKey creates a symmetric encryption key in local-kms and returns
// its key id and ARN.
func (s *Server) CreateKMSKey(t testing.TB) (id, arn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.KMS().CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatalf("awstest: kms CreateKey: %v\n%s", err, s.Log())
	}
	return awssdk.ToString(out.KeyMetadata.KeyId), awssdk.ToString(out.KeyMetadata.Arn)
}
