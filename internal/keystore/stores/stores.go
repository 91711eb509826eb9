// Package stores is the table of key stores a KES configuration file may
// name: for each, its name below "keystore:", the function that decodes
// the section straight into the store's own Config type, and the
// constructor that connects it.
//
// It is the one package that imports every store and therefore every
// vendor SDK; internal/config imports none of them and gets the table from
// its caller (cmd/kes passes [All] in a config.Schema).
//
// This package must not import internal/api or internal/metrics.
package stores

import (
	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes/internal/config"
)

// All lists every key store a configuration file may name, for
// config.Schema.KeyStores.
//
// Adding a store takes:
//
//  1. its package internal/keystore/<name>, exporting a plain Config struct
//     with its fields, their defaults and their validation, and
//     Connect(ctx, *Config) (*Store, error);
//  2. a file here, <name>.go, with the decode function: it fills the
//     store's Config with the [config.Decoder] (d.Mapping, d.Str, ...),
//     validates it with the store's own check and returns the error through
//     d.Fail, which adds file:line; and the small type it returns, whose
//     Connect calls the store's Connect, whose Banner is the KMS line and
//     whose HasSecrets says whether the section holds a credential (see
//     vault.go);
//  3. one line in this table;
//  4. a testdata/<name>.yml and its case in TestDecode.
var All = []config.Backend{
	{Name: "fs", Decode: decodeFS},
	{Name: "vault", Decode: decodeVault},
	{Name: "fortanix.sdkms", Decode: decodeFortanix},
	{Name: "gemalto.keysecure", Decode: decodeKeySecure},
	{Name: "gcp.secretmanager", Decode: decodeGCP},
	{Name: "aws.secretsmanager", Decode: decodeAWS},
	{Name: "azure.keyvault", Decode: decodeAzure},
	{Name: "entrust.keycontrol", Decode: decodeEntrust},
	{Name: "kmip", Decode: decodeKMIP}, // an OpenKES extension
}

// required is a value that must not be empty, and the message if it is.
type required struct {
	value, msg string
}

// requireAll returns an error at n for the first empty value.
func requireAll(d *config.Decoder, n *yaml.Node, prefix string, checks ...required) error {
	for _, c := range checks {
		if c.value == "" {
			return d.Failf(n, "%s%s", prefix, c.msg)
		}
	}
	return nil
}
