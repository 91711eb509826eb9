package stores_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openkes/kes/internal/awstest"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/aws"
	"github.com/openkes/kes/internal/keystore/azure"
	"github.com/openkes/kes/internal/keystore/entrust"
	"github.com/openkes/kes/internal/keystore/fortanix"
	"github.com/openkes/kes/internal/keystore/gcp"
	"github.com/openkes/kes/internal/keystore/gemalto"
	"github.com/openkes/kes/internal/keystore/kmip"
	"github.com/openkes/kes/internal/keystore/stores"
	"github.com/openkes/kes/internal/keystore/vault"
)

// schema is the server's: every store of the table.
var schema = &config.Schema{KeyStores: stores.All}

// ks is an admin and tls header followed by "keystore:" on line 6; the
// given lines start at line 7.
func ks(lines ...string) string {
	return strings.Join(append([]string{
		"admin:",
		"  identity: disabled",
		"tls:",
		"  key: k.pem",
		"  cert: c.pem",
		"keystore:",
	}, lines...), "\n") + "\n"
}

func readFile(t *testing.T, name string) *config.File {
	t.Helper()
	f, err := config.ReadFile(filepath.Join("testdata", name), schema)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDecode: every testdata/<store>.yml decodes into the store's own
// Config type, optional fields left empty for the store's defaults.
func TestDecode(t *testing.T) {
	tests := []struct {
		file    string
		want    config.KeyStore
		notices []string
	}{
		{"fs.yml", &stores.FS{Path: "/var/lib/kes"}, nil},
		{"vault.yml", &stores.Vault{Config: vault.Config{
			Endpoint: "https://127.0.0.1:8200", Engine: "secrets", EngineVersion: "v2", Namespace: "ns1", Prefix: "tenant-1",
			Transit:    &vault.Transit{Engine: "my-transit", Key: "my-transit-key"},
			AppRole:    &vault.AppRole{Engine: "my-approle", Namespace: "/", ID: "f5d6a54f", Secret: "1ba4b8aa"},
			TLS:        vault.TLS{KeyFile: "./vault-client.key", CertFile: "./vault-client.crt", CAPath: "./vault-ca.pem"},
			StatusPing: 10 * time.Second,
		}}, []string{"testdata/vault.yml:21: legacy key 'keystore.vault.approle.retry' is ignored"}},
		{"vault-kubernetes.yml", &stores.Vault{Config: vault.Config{
			Endpoint:   "https://vault.example.com:8200",
			Kubernetes: &vault.Kubernetes{Engine: "k8s", Namespace: "team", Role: "kes", JWT: "/var/run/secrets/kubernetes.io/serviceaccount/token"},
		}}, []string{"testdata/vault-kubernetes.yml:14: legacy key 'keystore.vault.kubernetes.retry' is ignored"}},
		{"fortanix.yml", &stores.Fortanix{Config: fortanix.Config{
			Endpoint: "https://sdkms.fortanix.com", GroupID: "8b2f0e2a", APIKey: "NjE1ZmQ4MTYtMjEzOS00", CAPath: "./fortanix-ca.pem",
		}}, nil},
		{"keysecure.yml", &stores.KeySecure{Config: gemalto.Config{
			Endpoint: "https://127.0.0.1", Token: "ehTdmWGS7fBq", Domain: "root", CAPath: "./keysecure-ca.pem",
		}}, []string{"testdata/keysecure.yml:13: legacy key 'keystore.gemalto.keysecure.credentials.retry' is ignored"}},
		// The private key as the file gives it, literal `\n` included: the
		// gcp package turns them into newlines (gcp.TestServiceAccountJSON).
		{"gcp.yml", &stores.GCP{Config: gcp.Config{
			ProjectID: "my-project", Endpoint: "secretmanager.googleapis.com:443",
			Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
			Credentials: gcp.Credentials{
				ClientEmail: "kes@my-project.iam.gserviceaccount.com", ClientID: "1234567890", PrivateKeyID: "0a1b2c3d",
				PrivateKey: `-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n`,
			},
		}}, nil},
		{"aws.yml", &stores.AWS{Config: aws.Config{
			Endpoint: "secretsmanager.us-east-2.amazonaws.com", Region: "us-east-2", KMSKey: "alias/kes",
			AccessKey: "AKIAIOSFODNN7EXAMPLE", SecretKey: "wJalrXUtnFEMI", SessionToken: "FwoGZXIvYXdz",
		}}, nil},
		{"azure.yml", &stores.Azure{Config: azure.Config{
			Endpoint:    "https://kes.vault.azure.net",
			Credentials: azure.Credentials{TenantID: "3a2c1b0d", ClientID: "7e6f5a4b", ClientSecret: "s3cr3t"},
		}}, nil},
		{"azure-managed.yml", &stores.Azure{Config: azure.Config{
			Endpoint: "https://kes.vault.azure.net", ManagedIdentityClientID: "9c8d7e6f",
		}}, nil},
		{"entrust.yml", &stores.Entrust{Config: entrust.Config{
			Endpoint: "https://keycontrol.example.com", VaultID: "1b2c3d4e", BoxID: "kes-box",
			Username: "kes", Password: "p4ssw0rd", CAPath: "./entrust-ca.pem",
		}}, nil},
		{"kmip.yml", &stores.KMIP{Config: kmip.Config{
			Endpoints: []string{"kmip-1.example.com:5696", "kmip-2.example.com"},
			CertFile:  "./kmip-client.crt", KeyFile: "./kmip-client.key", CAPath: "./kmip-ca.pem",
			Username: "kes", Password: "k1m1p-pw",
		}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := readFile(t, tt.file)
			if !reflect.DeepEqual(f.KeyStore, tt.want) {
				t.Errorf("keystore: got %#v, want %#v", f.KeyStore, tt.want)
			}
			var notices []string
			for _, n := range f.Notices {
				notices = append(notices, n.String())
			}
			if !reflect.DeepEqual(notices, tt.notices) {
				t.Errorf("notices: got %q, want %q", notices, tt.notices)
			}
		})
	}
}

// TestTable: every store of the table has its testdata file and decodes.
func TestTable(t *testing.T) {
	files := map[string]string{
		"fs": "fs.yml", "vault": "vault.yml", "fortanix.sdkms": "fortanix.yml", "gemalto.keysecure": "keysecure.yml",
		"gcp.secretmanager": "gcp.yml", "aws.secretsmanager": "aws.yml", "azure.keyvault": "azure.yml",
		"entrust.keycontrol": "entrust.yml", "kmip": "kmip.yml",
	}
	for _, b := range stores.All {
		if files[b.Name] == "" {
			t.Errorf("store %q has no testdata config in this test", b.Name)
			continue
		}
		readFile(t, files[b.Name])
	}
	if len(stores.All) != len(files) {
		t.Errorf("the table has %d stores, the test knows %d", len(stores.All), len(files))
	}
}

func TestBanner(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"fs.yml", "Filesystem: /var/lib/kes"},
		{"vault.yml", "Hashicorp Vault: https://127.0.0.1:8200"},
		{"fortanix.yml", "Fortanix SDKMS: https://sdkms.fortanix.com"},
		{"keysecure.yml", "Gemalto KeySecure: https://127.0.0.1"},
		{"gcp.yml", "GCP SecretManager: Project=my-project"},
		{"aws.yml", "AWS SecretsManager: secretsmanager.us-east-2.amazonaws.com"},
		{"azure.yml", "Azure KeyVault: https://kes.vault.azure.net"},
		{"entrust.yml", "Entrust KeyControl: https://keycontrol.example.com"},
		{"kmip.yml", "KMIP: kmip-1.example.com:5696, kmip-2.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if got := readFile(t, tt.file).KeyStore.Banner(); got != tt.want {
				t.Errorf("Banner() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	for _, file := range []string{"vault.yml", "vault-kubernetes.yml", "fortanix.yml", "keysecure.yml", "gcp.yml", "aws.yml", "azure.yml", "entrust.yml", "kmip.yml"} {
		t.Run(file, func(t *testing.T) {
			f := readFile(t, file)
			out := fmt.Sprintf("%v %+v %s", f, f, f.KeyStore)
			for _, secret := range []string{"1ba4b8aa", "serviceaccount", "NjE1ZmQ4MTYtMjEzOS00", "ehTdmWGS7fBq", "PRIVATE KEY", "wJalrXUtnFEMI", "s3cr3t", "p4ssw0rd", "k1m1p-pw"} {
				if strings.Contains(out, secret) {
					t.Errorf("printed config contains %q: %s", secret, out)
				}
			}
		})
	}
}

// TestErrors pins each store's error texts and lines (spec config.md §9).
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string // exact text after "<file>:<line>: "
		is   error
	}{
		{"fs-empty-path", ks("  fs:", "    path: \"\""), 7, "kesconf: invalid fs keystore: no path specified", nil},
		{"fs-null", ks("  fs:"), 7, "kesconf: invalid fs keystore: no path specified", nil},
		{"fs-unknown", ks("  fs:", "    dir: /tmp"), 8, "kesconf: unknown key 'keystore.fs.dir'", nil},

		{"vault-endpoint", ks("  vault:", "    approle: {id: a, secret: b}"), 7, "kesconf: invalid vault keystore: no endpoint specified", vault.ErrNoEndpoint},
		{"vault-version", ks("  vault:", "    endpoint: e", "    version: v3", "    approle: {id: a, secret: b}"), 7,
			"vault: invalid engine API version", vault.ErrEngineVersion},
		{"vault-no-auth", ks("  vault:", "    endpoint: e"), 7, "kesconf: invalid vault keystore: no authentication method specified", vault.ErrNoAuth},
		{"vault-two-auth", ks("  vault:", "    endpoint: e", "    approle: {id: a, secret: b}", "    kubernetes: {jwt: j}"), 10,
			"kesconf: invalid vault keystore: more than one authentication method specified", vault.ErrManyAuth},
		{"vault-approle-id", ks("  vault:", "    endpoint: e", "    approle:", "      secret: b"), 9,
			"kesconf: invalid vault keystore: no AppRole ID specified", vault.ErrNoAppRoleID},
		{"vault-approle-secret", ks("  vault:", "    endpoint: e", "    approle:", "      id: a"), 9,
			"kesconf: invalid vault keystore: no AppRole secret specified", vault.ErrNoAppRoleSecret},
		{"vault-kubernetes-jwt", ks("  vault:", "    endpoint: e", "    kubernetes:", "      role: r"), 9,
			"kesconf: invalid vault keystore: no Kubernetes JWT specified", vault.ErrNoJWT},
		{"vault-transit-key", ks("  vault:", "    endpoint: e", "    transit:", "      engine: t", "    approle: {id: a, secret: b}"), 9,
			"kesconf: invalid vault keystore: no transit key specified", vault.ErrNoTransitKey},
		{"vault-tls-pair", ks("  vault:", "    endpoint: e", "    approle: {id: a, secret: b}", "    tls:", "      key: k"), 7,
			"kesconf: invalid vault keystore: tls.key and tls.cert must be specified together", vault.ErrTLSPair},
		{"vault-ping", ks("  vault:", "    endpoint: e", "    status:", "      ping: -1s"), 10,
			"kesconf: invalid vault keystore: invalid status ping '-1s'", nil},
		{"vault-ping-integer", ks("  vault:", "    endpoint: e", "    status:", "      ping: 10"), 10,
			"kesconf: invalid value for 'keystore.vault.status.ping': expected a duration such as 15s or 5m, found '10'", nil},

		{"fortanix-endpoint", ks("  fortanix:", "    sdkms:", "      credentials: {key: k}"), 8,
			"kesconf: invalid fortanix keystore: no endpoint specified", nil},
		{"fortanix-key", ks("  fortanix:", "    sdkms:", "      endpoint: e"), 8,
			"kesconf: invalid fortanix keystore: no API key specified", nil},
		{"keysecure-endpoint", ks("  gemalto:", "    keysecure:", "      credentials: {token: t}"), 8,
			"kesconf: invalid gemalto keystore: no endpoint specified", nil},
		{"keysecure-token", ks("  gemalto:", "    keysecure:", "      endpoint: e"), 8,
			"kesconf: invalid gemalto keystore: no token specified", nil},
		{"gcp-project", ks("  gcp:", "    secretmanager:", "      endpoint: e"), 8,
			"kesconf: invalid GCP keystore: no project ID specified", gcp.ErrNoProjectID},
		{"gcp-partial-credentials", ks("  gcp:", "    secretmanager:", "      project_id: p", "      credentials:", "        client_email: a@b"), 10,
			"kesconf: invalid GCP keystore: no client ID specified", gcp.ErrNoClientID},
		{"gcp-no-email", ks("  gcp:", "    secretmanager:", "      project_id: p", "      credentials:", "        private_key: k"), 10,
			"kesconf: invalid GCP keystore: no client email specified", gcp.ErrNoClientEmail},
		{"gcp-no-key-id", ks("  gcp:", "    secretmanager:", "      project_id: p", "      credentials:", "        client_email: a@b",
			"        client_id: c", "        private_key: k"), 10,
			"kesconf: invalid GCP keystore: no private key ID specified", gcp.ErrNoPrivateKeyID},
		{"gcp-no-key", ks("  gcp:", "    secretmanager:", "      project_id: p", "      credentials:", "        client_email: a@b",
			"        client_id: c", "        private_key_id: i"), 10,
			"kesconf: invalid GCP keystore: no private key specified", gcp.ErrNoPrivateKey},
		{"gcp-credentials-without-project", ks("  gcp:", "    secretmanager:", "      credentials:", "        client_email: a@b"), 8,
			"kesconf: invalid GCP keystore: no project ID specified", gcp.ErrNoProjectID},
		{"gcp-scopes", ks("  gcp:", "    secretmanager:", "      project_id: p", "      scopes: s"), 10,
			"kesconf: invalid value for 'keystore.gcp.secretmanager.scopes': expected a sequence, found a scalar", nil},
		{"aws-endpoint", ks("  aws:", "    secretsmanager:", "      region: r"), 8, "kesconf: invalid AWS keystore: no endpoint specified", nil},
		{"aws-region", ks("  aws:", "    secretsmanager:", "      endpoint: e"), 8, "kesconf: invalid AWS keystore: no region specified", nil},
		{"azure-endpoint", ks("  azure:", "    keyvault: {}"), 8, "kesconf: invalid Azure keystore: no endpoint specified", nil},
		{"azure-both", ks("  azure:", "    keyvault:", "      endpoint: e", "      credentials: {tenant_id: t, client_id: c, client_secret: s}",
			"      managed_identity: {client_id: m}"), 11,
			"kesconf: invalid Azure keystore: only one of credentials and managed_identity may be specified", nil},
		{"azure-credentials", ks("  azure:", "    keyvault:", "      endpoint: e", "      credentials: {tenant_id: t, client_id: c}"), 10,
			"kesconf: invalid Azure keystore: no client secret specified", nil},
		{"azure-managed", ks("  azure:", "    keyvault:", "      endpoint: e", "      managed_identity: {client_id: \"\"}"), 10,
			"kesconf: invalid Azure keystore: no managed identity client ID specified", nil},
		{"entrust-box", ks("  entrust:", "    keycontrol:", "      endpoint: e", "      vault_id: v"), 8,
			"kesconf: invalid Entrust keystore: no box ID specified", nil},
		{"entrust-password", ks("  entrust:", "    keycontrol:", "      endpoint: e", "      vault_id: v", "      box_id: b",
			"      credentials: {username: u}"), 8, "kesconf: invalid Entrust keystore: no password specified", nil},

		{"kmip-endpoint", ks("  kmip:", "    tls: {key: k, cert: c}"), 7, "kesconf: invalid KMIP keystore: no endpoint specified", kmip.ErrNoEndpoint},
		{"kmip-endpoint-empty", ks("  kmip:", "    endpoint: \"\"", "    tls: {key: k, cert: c}"), 7,
			"kesconf: invalid KMIP keystore: no endpoint specified", kmip.ErrNoEndpoint},
		{"kmip-endpoint-url", ks("  kmip:", "    endpoint: https://kmip.example.com", "    tls: {key: k, cert: c}"), 7,
			"kesconf: invalid KMIP keystore: invalid endpoint \"https://kmip.example.com\": want host or host:port", kmip.ErrInvalidEndpoint},
		{"kmip-endpoint-port", ks("  kmip:", "    endpoints: [kmip.example.com:0]", "    tls: {key: k, cert: c}"), 7,
			"kesconf: invalid KMIP keystore: invalid endpoint \"kmip.example.com:0\": want host or host:port", kmip.ErrInvalidEndpoint},
		{"kmip-both-endpoints", ks("  kmip:", "    endpoints: [a]", "    endpoint: b", "    tls: {key: k, cert: c}"), 9,
			"kesconf: invalid KMIP keystore: only one of endpoint and endpoints may be specified", nil},
		{"kmip-endpoints-scalar", ks("  kmip:", "    endpoints: a", "    tls: {key: k, cert: c}"), 8,
			"kesconf: invalid value for 'keystore.kmip.endpoints': expected a sequence, found a scalar", nil},
		{"kmip-cert", ks("  kmip:", "    endpoint: e", "    tls: {key: k}"), 7,
			"kesconf: invalid KMIP keystore: no client certificate (tls.cert) specified", kmip.ErrNoClientCert},
		{"kmip-key", ks("  kmip:", "    endpoint: e", "    tls: {cert: c}"), 7,
			"kesconf: invalid KMIP keystore: no client private key (tls.key) specified", kmip.ErrNoClientKey},
		{"kmip-username", ks("  kmip:", "    endpoint: e", "    tls: {key: k, cert: c}", "    credentials: {password: p}"), 7,
			"kesconf: invalid KMIP keystore: password specified without username", kmip.ErrNoUsername},
		{"kmip-unknown", ks("  kmip:", "    endpoint: e", "    tls: {key: k, cert: c, ciphers: x}"), 9,
			"kesconf: unknown key 'keystore.kmip.tls.ciphers'", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), "kes.yml", schema)
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse: got %v, want a *config.Error", err)
			}
			if cerr.File != "kes.yml" || cerr.Line != tt.line || cerr.Err.Error() != tt.msg {
				t.Errorf("got %q at %s:%d, want %q at kes.yml:%d", cerr.Err, cerr.File, cerr.Line, tt.msg, tt.line)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

// TestConnectAzure: the upstream Azure config files connect (Connect
// contacts nothing; the store's own tests run it against a fake vault).
func TestConnectAzure(t *testing.T) {
	for _, file := range []string{"azure.yml", "azure-managed.yml"} {
		s, err := readFile(t, file).KeyStore.Connect(t.Context(), nil)
		if err != nil {
			t.Fatalf("%s: Connect: %v", file, err)
		}
		if _, ok := s.(*azure.Store); !ok {
			t.Fatalf("%s: Connect returned %T, want *azure.Store", file, s)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%s: Close: %v", file, err)
		}
	}
}

func TestConnectFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	f, err := config.Parse([]byte(ks("  fs:", "    path: "+dir)), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.KeyStore.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "my-key")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get: got %q, %v; want %q", got, err, "value")
	}
}

// TestConnectAWS: an aws.secretsmanager section connects the aws store
// (here to kumo, with the file's static credentials).
func TestConnectAWS(t *testing.T) {
	kumo := awstest.StartKumo(t)
	f, err := config.Parse([]byte(ks("  aws:", "    secretsmanager:", "      endpoint: "+kumo.URL(),
		"      region: "+awstest.Region, "      credentials:", "        accesskey: "+awstest.AccessKey,
		"        secretkey: "+awstest.SecretKey)), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.KeyStore.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(t.Context(), "my-key", []byte("value")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "my-key")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get: got %q, %v; want %q", got, err, "value")
	}
}

// TestVaultConnectInvalid: a Vault section that does not decode never
// reaches Connect; one that does is validated again by the store itself,
// with the same rule, so the two cannot disagree.
func TestVaultConnectInvalid(t *testing.T) {
	v := &stores.Vault{Config: vault.Config{Endpoint: "http://127.0.0.1:1"}}
	if _, err := v.Connect(t.Context(), nil); !errors.Is(err, vault.ErrNoAuth) {
		t.Fatalf("Connect: got %v, want %v", err, vault.ErrNoAuth)
	}
}

// TestGCPConnect: a GCP section that decodes is connected by the gcp
// package, which validates it again with the same rule and probes the
// endpoint (here: nothing listens). The full path against a Secret Manager
// is cmd/kes TestGCPServer.
func TestGCPConnect(t *testing.T) {
	g := &stores.GCP{}
	if _, err := g.Connect(t.Context(), nil); !errors.Is(err, gcp.ErrNoProjectID) {
		t.Fatalf("Connect: got %v, want %v", err, gcp.ErrNoProjectID)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n", `\n`)
	f, err := config.Parse([]byte(ks("  gcp:", "    secretmanager:", "      project_id: p", "      endpoint: 127.0.0.1:1",
		"      credentials:", "        client_email: kes@p.iam.gserviceaccount.com", "        client_id: \"1\"",
		"        private_key_id: k1", "        private_key: \""+pemKey+"\"")), "kes.yml", schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.KeyStore.Connect(t.Context(), nil)
	var unreachable *keystore.UnreachableError
	if !errors.As(err, &unreachable) || s != nil {
		t.Fatalf("Connect: got %v, %v; want a *keystore.UnreachableError", s, err)
	}
}

// TestHasSecrets: which sections hold a credential a reader of the file
// could use (the server warns about such files readable by others).
func TestHasSecrets(t *testing.T) {
	for file, want := range map[string]bool{
		"fs.yml":               false,
		"vault.yml":            true,  // AppRole secret
		"vault-kubernetes.yml": false, // the JWT is a file path
		"aws.yml":              true,
		"azure.yml":            true,
		"azure-managed.yml":    false,
		"gcp.yml":              true,
		"fortanix.yml":         true,
		"keysecure.yml":        true,
		"entrust.yml":          true,
		"kmip.yml":             true,
	} {
		if got := readFile(t, file).KeyStore.HasSecrets(); got != want {
			t.Errorf("%s: HasSecrets = %v, want %v", file, got, want)
		}
	}
}
