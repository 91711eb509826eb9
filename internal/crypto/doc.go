// Package crypto implements the key material of a KES server, byte-compatible
// with upstream KES (spec crypto.md): master keys ([SecretKey]) and their
// ciphertext formats, HMAC keys ([HMACKey]) and the key records a key store
// holds under each key name ([Key], [ParseKey], [Key.MarshalBinary]).
//
// # Formats
//
// A stored record is either the current form, standard base64 (padded) of a
// protobuf KeyVersion message, or one of the legacy JSON forms written before
// 2024. [ParseKey] reads every form; [Key.MarshalBinary] always writes the
// current one. KES never rewrites a stored record, so legacy records keep
// their form (and their missing HMAC key) for their whole life.
//
// [SecretKey.Encrypt] produces the raw ciphertext C‖TAG‖IV‖NONCE (44 bytes of
// overhead, no header). [SecretKey.Decrypt] also reads the legacy JSON and
// msgpack ciphertexts, recognised by their first byte and, when they do not
// parse, decrypted as raw.
//
// # Key versions (not implemented)
//
// Neither format carries a key version, so versions must be added beside
// them, never inside:
//
//   - Records: a record holding several versions gets a new form recognised
//     by its first bytes. Current records are base64 text that always starts
//     with "Ci" (protobuf field 1, wire type 2) and legacy records are JSON
//     objects ("{"); a new form would use a distinct prefix and keep parsing
//     both old forms as "version 0".
//   - Ciphertexts: a versioned ciphertext needs an envelope naming its
//     version, recognised by a first byte the way the legacy msgpack form is
//     (0x95), with the same rule: if the envelope does not parse or does not
//     authenticate, the bytes are decrypted as a raw ciphertext of version 0.
//     Existing ciphertexts thus stay decryptable.
//
// # Dependencies
//
// The package imports the standard library, golang.org/x/crypto,
// golang.org/x/sys/cpu, protowire and the msgp runtime. It must not import
// the SDK, net/http, the server, a key store or anything that does I/O: its
// errors are its own, and the API maps them to upstream's (TestDeps).
package crypto
