package api_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/kes/internal/vectors"

	"github.com/openkes/kes"
)

// TestSDKFailover: the SDK talks to two real OpenKES servers on one key
// store; one of them stops in the middle of the run and no request fails.
// Errors of each class arrive as the SDK's typed values.
func TestSDKFailover(t *testing.T) {
	a := startServer(t, serverOptions{})
	b := startServer(t, serverOptions{sharedDir: a.Dir})
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	apiKey, err := kes.ParseAPIKey(keys[0].APIKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kes.NewClient([]string{a.URL, b.URL}, kes.WithAPIKey(apiKey), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	if err := client.CreateKey(ctx, "failover"); err != nil {
		t.Fatal(err)
	}
	dek, err := client.GenerateKey(ctx, "failover", []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	stopped := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				if w == 0 && i == 20 {
					a.Stop()
					close(stopped)
				}
				plaintext, err := client.Decrypt(ctx, "failover", dek.Ciphertext, []byte("ctx"))
				if err != nil {
					errs <- err
					return
				}
				if string(plaintext) != string(dek.Plaintext) {
					errs <- errors.New("wrong plaintext")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	<-stopped
	for err := range errs {
		var ce *kes.ConnError
		errors.As(err, &ce)
		t.Fatalf("request failed during failover: %v (host %s; first server %s, second %s)", err, ce.Host, a.URL, b.URL)
	}
	for name, ts := range map[string]*testServer{"first": a, "second": b} {
		if !strings.Contains(ts.Audit.String(), "/v1/key/decrypt/failover") {
			t.Fatalf("the %s server answered no decrypt: the run did not use both", name)
		}
	}

	// Typed errors from the live server.
	for _, tt := range []struct {
		err  error
		want error
	}{
		{client.CreateKey(ctx, "failover"), kes.ErrKeyExists},
		{ignore(client.DescribeKey(ctx, "missing")), kes.ErrKeyNotFound},
		{ignore(client.Decrypt(ctx, "failover", []byte("garbage-garbage-garbage-garbage"), nil)), kes.ErrDecrypt},
		{ignore(client.GetPolicy(ctx, "missing")), kes.ErrPolicyNotFound},
		{ignore(client.DescribeIdentity(ctx, "0000000000000000000000000000000000000000000000000000000000000000")), kes.ErrIdentityNotFound},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("got %v, want %v", tt.err, tt.want)
		}
	}
	other, _ := kes.GenerateAPIKey(nil)
	c2, _ := kes.NewClient([]string{b.URL}, kes.WithAPIKey(other), kes.WithInsecureSkipVerify())
	defer c2.Close()
	if err := c2.CreateKey(ctx, "x"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Errorf("unknown identity: %v, want ErrNotAllowed", err)
	}
}

func ignore[T any](_ T, err error) error { return err }
