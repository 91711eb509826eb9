package gcp

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestValidate: the rules and texts of spec config.md §9.5, which a config
// file reports as they are (stores.decodeGCP adds only file:line). The
// texts were "gcp: ..." while the config package checked the file itself;
// since the check is only here, they are upstream's.
func TestValidate(t *testing.T) {
	full := Credentials{ClientEmail: "kes@p.iam.gserviceaccount.com", ClientID: "1", PrivateKeyID: "k", PrivateKey: "pem"}
	tests := []struct {
		name string
		c    *Config
		want error // nil for none
		text string
	}{
		{"adc", &Config{ProjectID: "p"}, nil, ""},
		{"service account", &Config{ProjectID: "p", Credentials: full}, nil, ""},
		{"nil", nil, ErrNoProjectID, "kesconf: invalid GCP keystore: no project ID specified"},
		{"no project", &Config{Credentials: full}, ErrNoProjectID, "kesconf: invalid GCP keystore: no project ID specified"},
		{"no email", &Config{ProjectID: "p", Credentials: Credentials{ClientID: "1", PrivateKeyID: "k", PrivateKey: "pem"}},
			ErrNoClientEmail, "kesconf: invalid GCP keystore: no client email specified"},
		{"no client id", &Config{ProjectID: "p", Credentials: Credentials{ClientEmail: "e", PrivateKeyID: "k", PrivateKey: "pem"}},
			ErrNoClientID, "kesconf: invalid GCP keystore: no client ID specified"},
		{"no key id", &Config{ProjectID: "p", Credentials: Credentials{ClientEmail: "e", ClientID: "1", PrivateKey: "pem"}},
			ErrNoPrivateKeyID, "kesconf: invalid GCP keystore: no private key ID specified"},
		{"no key", &Config{ProjectID: "p", Credentials: Credentials{ClientEmail: "e", ClientID: "1", PrivateKeyID: "k"}},
			ErrNoPrivateKey, "kesconf: invalid GCP keystore: no private key specified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err != tt.want {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if err != nil && err.Error() != tt.text {
				t.Errorf("Validate() = %q, want %q", err, tt.text)
			}
		})
	}
}

// TestConnectInvalid: Connect refuses what Validate refuses, before any
// network call.
func TestConnectInvalid(t *testing.T) {
	s, err := Connect(t.Context(), &Config{Endpoint: "127.0.0.1:1"}, nil)
	if err != ErrNoProjectID || s != nil {
		t.Fatalf("Connect = %v, %v; want %v", s, err, ErrNoProjectID)
	}
}

func TestConfigString(t *testing.T) {
	c := &Config{ProjectID: "my-project", Credentials: Credentials{ClientEmail: "e", ClientID: "1", PrivateKeyID: "key-id", PrivateKey: "-----BEGIN PRIVATE KEY-----secret"}}
	if got := c.String(); got != "GCP SecretManager: Project=my-project" || strings.Contains(got, "secret") {
		t.Fatalf("String() = %q", got)
	}
}

// TestServiceAccountJSON pins the key file upstream KES synthesises from
// the config (spec config.md §9.5).
func TestServiceAccountJSON(t *testing.T) {
	c := &Config{ProjectID: "p", Credentials: Credentials{
		ClientEmail: "kes@p.iam.gserviceaccount.com", ClientID: "123", PrivateKeyID: "abc",
		PrivateKey: `-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`,
	}}
	b, err := c.serviceAccountJSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"type":                        "service_account",
		"project_id":                  "p",
		"private_key_id":              "abc",
		"private_key":                 "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"client_email":                "kes@p.iam.gserviceaccount.com",
		"client_id":                   "123",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://accounts.google.com/o/oauth2/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/kes@p.iam.gserviceaccount.com",
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestProbeURL(t *testing.T) {
	for endpoint, want := range map[string]string{
		"":                                 "https://secretmanager.googleapis.com",
		"secretmanager.googleapis.com:443": "https://secretmanager.googleapis.com:443",
		"127.0.0.1:8443":                   "https://127.0.0.1:8443",
		"https://example.com":              "https://example.com",
	} {
		if got := (&Config{Endpoint: endpoint}).probeURL(); got != want {
			t.Errorf("probeURL(%q) = %q, want %q", endpoint, got, want)
		}
	}
}
