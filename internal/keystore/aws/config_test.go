package aws

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigSettings(t *testing.T) {
	tests := []struct {
		name     string
		c        *Config
		err      error
		endpoint string
	}{
		{"nil", nil, ErrNoEndpoint, ""},
		{"no endpoint", &Config{Region: "us-east-1"}, ErrNoEndpoint, ""},
		{"no region", &Config{Endpoint: "secretsmanager.us-east-1.amazonaws.com"}, ErrNoRegion, ""},
		{"host", &Config{Endpoint: "secretsmanager.us-east-2.amazonaws.com", Region: "us-east-2"}, nil, "https://secretsmanager.us-east-2.amazonaws.com"},
		{"host:port", &Config{Endpoint: "127.0.0.1:4566", Region: "us-east-1"}, nil, "https://127.0.0.1:4566"},
		{"https", &Config{Endpoint: "https://sm.example", Region: "us-east-1"}, nil, "https://sm.example"},
		{"http", &Config{Endpoint: "http://127.0.0.1:4566", Region: "us-east-1"}, nil, "http://127.0.0.1:4566"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.c.settings()
			if !errors.Is(err, tt.err) {
				t.Fatalf("settings() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if s.endpoint != tt.endpoint || s.MaxAttempts != DefaultMaxAttempts || s.MaxBackoff != DefaultMaxBackoff {
				t.Fatalf("settings() = endpoint %q, attempts %d, backoff %v", s.endpoint, s.MaxAttempts, s.MaxBackoff)
			}
		})
	}
	for _, bad := range []string{"ftp://sm.example", "https://", "http://[::1"} {
		if _, err := (&Config{Endpoint: bad, Region: "r"}).settings(); err == nil {
			t.Errorf("settings(%q) accepted", bad)
		}
	}
}

func TestConfigStringHidesCredentials(t *testing.T) {
	c := &Config{Endpoint: "sm.example", Region: "r", AccessKey: "AKIDSECRETISH", SecretKey: "the-secret", SessionToken: "the-token"}
	got := c.String()
	if got != "AWS SecretsManager: sm.example" {
		t.Fatalf("String() = %q", got)
	}
	for _, s := range []string{c.SecretKey, c.SessionToken} {
		if strings.Contains(got, s) {
			t.Fatalf("String() contains a credential")
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "my-key", "A_b.c@d+e=f/g", strings.Repeat("k", 512)} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "arn:aws:x", "a b", "ä", "a\x00", "a%2f", strings.Repeat("k", 513)} {
		if err := checkName(bad); err == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}
