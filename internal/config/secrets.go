package config

import (
	"os"
	"strings"
)

// HasSecrets reports whether f holds a secret that a reader of the file
// could use: the TLS key password or a key store credential (Vault AppRole
// secret or literal Kubernetes token, AWS secret key or session token, Azure
// client secret, GCP private key, Fortanix API key, KeySecure token, Entrust
// password). A secret given as "${VAR}" counts too, since Parse has expanded
// it; the server only uses the answer for a warning.
func HasSecrets(f *File) bool {
	if f.TLS.Password != "" {
		return true
	}
	switch ks := f.KeyStore.(type) {
	case *VaultConfig:
		// A JWT containing '/' is the path of the token file.
		return ks.AppRole.Secret != "" || (ks.Kubernetes.JWT != "" && !strings.Contains(ks.Kubernetes.JWT, "/"))
	case *AWSConfig:
		return ks.SecretKey != "" || ks.SessionToken != ""
	case *AzureConfig:
		return ks.Credentials.ClientSecret != ""
	case *GCPConfig:
		return ks.Credentials.PrivateKey != ""
	case *FortanixConfig:
		return ks.APIKey != ""
	case *KeySecureConfig:
		return ks.Token != ""
	case *EntrustConfig:
		return ks.Password != ""
	}
	return false
}

// ExposedSecrets reports whether the configuration file filename, parsed
// into f, holds secrets (see [HasSecrets]) and can be read by its group or
// by others, and returns the file's permission bits. A file that cannot be
// stat'ed is not reported.
func ExposedSecrets(filename string, f *File) (os.FileMode, bool) {
	if !HasSecrets(f) {
		return 0, false
	}
	fi, err := os.Stat(filename)
	if err != nil {
		return 0, false
	}
	perm := fi.Mode().Perm()
	return perm, perm&0o044 != 0
}
