package config

import "os"

// HasSecrets reports whether f holds a secret that a reader of the file
// could use: the TLS key password, a key store credential (the key
// store's own [KeyStore.HasSecrets] decides) or an HSM PIN. A secret given
// as "${VAR}" counts too, since Parse has expanded it; the server only uses
// the answer for a warning.
func HasSecrets(f *File) bool {
	return f.TLS.Password != "" || f.KeyStore != nil && f.KeyStore.HasSecrets() || f.HSM != nil && f.HSM.HasSecrets()
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
