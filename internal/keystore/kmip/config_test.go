package kmip

import (
	"errors"
	"strings"
	"testing"
)

func TestEndpointAddr(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"kmip.example.com", "kmip.example.com:5696"},
		{"kmip.example.com:5697", "kmip.example.com:5697"},
		{"127.0.0.1", "127.0.0.1:5696"},
		{"127.0.0.1:1", "127.0.0.1:1"},
		{"[::1]", "[::1]:5696"},
		{"[::1]:5696", "[::1]:5696"},
		{"", ""},
		{"::1", ""}, // an IPv6 address needs brackets
		{"https://kmip.example.com", ""},
		{"kmip.example.com/path", ""},
		{"kmip.example.com:0", ""},
		{"kmip.example.com:65536", ""},
		{"kmip.example.com:kmip", ""},
		{":5696", ""},
		{"a b:5696", ""},
	} {
		got, err := endpointAddr(tt.in)
		if tt.want == "" {
			if !errors.Is(err, ErrInvalidEndpoint) {
				t.Errorf("endpointAddr(%q) = %q, %v; want ErrInvalidEndpoint", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("endpointAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Endpoints: []string{"kmip"}, CertFile: "c", KeyFile: "k"}
	for _, tt := range []struct {
		name   string
		change func(c *Config)
		want   error
	}{
		{"ok", func(*Config) {}, nil},
		{"credentials", func(c *Config) { c.Username, c.Password = "u", "p" }, nil},
		{"username only", func(c *Config) { c.Username = "u" }, nil},
		{"no endpoint", func(c *Config) { c.Endpoints = nil }, ErrNoEndpoint},
		{"bad second endpoint", func(c *Config) { c.Endpoints = append(c.Endpoints, "x:y") }, ErrInvalidEndpoint},
		{"no cert", func(c *Config) { c.CertFile = "" }, ErrNoClientCert},
		{"no key", func(c *Config) { c.KeyFile = "" }, ErrNoClientKey},
		{"password only", func(c *Config) { c.Password = "p" }, ErrNoUsername},
	} {
		c := ok
		c.Endpoints = append([]string(nil), ok.Endpoints...)
		tt.change(&c)
		if err := c.Validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: Validate = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestConfigString: printing a Config never prints the password.
func TestConfigString(t *testing.T) {
	c := &Config{Endpoints: []string{"a", "b"}, CertFile: "c", KeyFile: "k", Username: "kes", Password: "s3cret-pw"}
	if s := c.String(); strings.Contains(s, "s3cret-pw") || !strings.Contains(s, "a,b") {
		t.Fatalf("String() = %q", s)
	}
}
