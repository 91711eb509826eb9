package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes"
)

// TLS is the server's TLS configuration (config.md §4,
// identity-and-auth.md §3).
type TLS struct {
	// KeyFile is the path of the PEM private key. Never empty after Parse.
	KeyFile string

	// CertFile is the path of the PEM certificate chain, leaf first. Never
	// empty after Parse.
	CertFile string

	// Password decrypts a legacy encrypted PEM private key. Empty means
	// the key is not encrypted. It is a secret: never log it.
	Password string

	// Auth is "on" (verify client certificates) or "off" (require one but
	// do not verify its chain). Parse never leaves it empty: the file's
	// "" means "off".
	Auth string

	// CAPath is a file or directory of extra root certificates for
	// verifying clients. Empty means the system roots only.
	CAPath string

	// Proxy is the TLS-proxy configuration (identity-and-auth.md §6,
	// served by internal/api's proxy mode).
	Proxy Proxy
}

// Proxy is the TLS-proxy configuration (identity-and-auth.md §6).
type Proxy struct {
	// Identities are the identities of TLS-terminating proxies. Nil means
	// none. Empty values in the file are dropped.
	Identities []kes.Identity

	// CertHeader is the header carrying the forwarded client certificate.
	// Empty means none was configured.
	CertHeader string
}

// TLS client-authentication modes of [TLS.Auth].
const (
	AuthOn  = "on"
	AuthOff = "off"
)

func (d *Decoder) tls(r *rawFile) Field {
	t := &r.TLS
	return func(path string, k, v *yaml.Node) error {
		r.tlsNode = k
		var auth string
		err := d.Mapping(v, path, map[string]Field{
			"key":      d.Str(&t.KeyFile),
			"cert":     d.Str(&t.CertFile),
			"password": d.Str(&t.Password),
			"auth": func(p string, k, v *yaml.Node) error {
				if err := d.Str(&auth)(p, k, v); err != nil {
					return err
				}
				switch strings.ToLower(auth) {
				case "", AuthOff:
					t.Auth = AuthOff
				case AuthOn:
					t.Auth = AuthOn
				default:
					return d.Failf(v, "kesconf: invalid tls config: invalid auth '%s'", auth)
				}
				return nil
			},
			"ca": d.Str(&t.CAPath),
			"proxy": d.Sub(map[string]Field{
				"identities": func(p string, _, v *yaml.Node) error {
					ids, err := d.List(v, p, true)
					if err != nil {
						return err
					}
					items := resolve(v)
					for i, id := range ids {
						if id != "" {
							t.Proxy.Identities = append(t.Proxy.Identities, kes.Identity(id))
							r.proxyNodes = append(r.proxyNodes, items.Content[i])
						}
					}
					return nil
				},
				"header": d.Sub(map[string]Field{"cert": d.Str(&t.Proxy.CertHeader)}),
			}),
		})
		return err
	}
}

// validateTLS checks the required files and that no proxy is the admin.
func (d *Decoder) validateTLS(r *rawFile) error {
	if r.TLS.Auth == "" {
		r.TLS.Auth = AuthOff
	}
	if r.TLS.KeyFile == "" {
		return d.Fail(r.tlsNode, ErrNoPrivateKey)
	}
	if r.TLS.CertFile == "" {
		return d.Fail(r.tlsNode, ErrNoCertificate)
	}
	for i, id := range r.TLS.Proxy.Identities {
		if id == r.Admin {
			return d.Fail(r.proxyNodes[i], fmt.Errorf("kesconf: invalid tls proxy: identity '%s' is already admin", id))
		}
	}
	return nil
}

// String describes t without its password.
func (t TLS) String() string {
	pw := ""
	if t.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("{KeyFile:%s CertFile:%s Password:%s Auth:%s CAPath:%s Proxy:%v}",
		t.KeyFile, t.CertFile, pw, t.Auth, t.CAPath, t.Proxy)
}
