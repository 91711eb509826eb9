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
// # Key versions
//
// Neither upstream format carries a key version, so versions live beside
// them (ring.go, version.go, docs/key-rotation.md):
//
//   - Records: a rotated key is stored as a ring, "kesring1:" + base64 of a
//     protobuf list of versions, each holding an upstream record verbatim;
//     version 1 is the record the key had before. [ParseKey] reads rings
//     too; [RotateRecord] and [SetDisabledRecord] change them without
//     re-encoding any version's record. A key never rotated keeps its
//     upstream record and is its own version 1.
//   - Ciphertexts: version 1 is upstream's raw format; versions >= 2 prefix
//     'K' 'V' and the 4-byte version, which the AEAD authenticates as
//     associated data before the context. A ciphertext that looks
//     versioned but does not open as such is decrypted as version 1's, so
//     every existing ciphertext stays decryptable ([Key.Decrypt]).
//
// # Dependencies
//
// The package imports the standard library, golang.org/x/crypto,
// golang.org/x/sys/cpu, protowire and the msgp runtime. It must not import
// the SDK, net/http, the server, a key store or anything that does I/O: its
// errors are its own, and the API maps them to upstream's (TestDeps).
package crypto
