package crypto

import (
	"crypto/fips140"
	"errors"
	"runtime"
	"strconv"

	"golang.org/x/sys/cpu"
)

// KeyType is the algorithm of a master key. Its values are the codes stored in
// protobuf key records (spec crypto.md §2.1).
type KeyType uint32

// Key types.
const (
	// AES256 derives a one-time key with HMAC-SHA-256 and seals with
	// AES-256-GCM.
	AES256 KeyType = 1
	// ChaCha20 derives a one-time key with HChaCha20 and seals with
	// ChaCha20-Poly1305.
	ChaCha20 KeyType = 2
)

// ErrUnsupportedCipher is returned by [ParseCipher] for a name that is not one
// of the supported cipher names.
var ErrUnsupportedCipher = errors.New("crypto: unsupported cipher")

// String returns the API name of t: "AES256" or "ChaCha20". Other values are
// printed as "KeyType(n)".
func (t KeyType) String() string {
	switch t {
	case AES256:
		return "AES256"
	case ChaCha20:
		return "ChaCha20"
	}
	return "KeyType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

func (t KeyType) valid() bool { return t == AES256 || t == ChaCha20 }

// ParseCipher returns the key type of an import cipher name: "AES256" and
// "AES256-GCM_SHA256" are AES256, "ChaCha20" and "XCHACHA20-POLY1305" are
// ChaCha20. Names are case-sensitive. Any other name returns an error
// matching [ErrUnsupportedCipher]. In FIPS 140 mode the caller must refuse
// ChaCha20 itself (the import API answers 406), since keys of that type
// cannot encrypt there ([ErrFIPS]).
func ParseCipher(s string) (KeyType, error) {
	switch s {
	case "AES256", "AES256-GCM_SHA256":
		return AES256, nil
	case "ChaCha20", "XCHACHA20-POLY1305":
		return ChaCha20, nil
	}
	return 0, ErrUnsupportedCipher
}

// DefaultKeyType returns the type of keys the server creates: AES256 in FIPS
// 140 mode or when the CPU has AES-GCM hardware, else ChaCha20 (spec
// crypto.md §1).
func DefaultKeyType() KeyType {
	if fips140.Enabled() || aesGCMHardware(runtime.GOARCH, hostFeatures()) {
		return AES256
	}
	return ChaCha20
}

// cpuFeatures are the CPU flags that decide whether AES-GCM is accelerated.
type cpuFeatures struct {
	x86AES, x86PCLMULQDQ            bool
	armAES, armPMULL                bool
	s390AES, s390AESCBC, s390AESCTR bool
	s390GHASH, s390AESGCM           bool
}

func hostFeatures() cpuFeatures {
	return cpuFeatures{
		x86AES:       cpu.X86.HasAES,
		x86PCLMULQDQ: cpu.X86.HasPCLMULQDQ,
		armAES:       cpu.ARM64.HasAES,
		armPMULL:     cpu.ARM64.HasPMULL,
		s390AES:      cpu.S390X.HasAES,
		s390AESCBC:   cpu.S390X.HasAESCBC,
		s390AESCTR:   cpu.S390X.HasAESCTR,
		s390GHASH:    cpu.S390X.HasGHASH,
		s390AESGCM:   cpu.S390X.HasAESGCM,
	}
}

// aesGCMHardware reports whether a CPU of the given architecture with the
// given features runs AES-GCM in hardware.
func aesGCMHardware(goarch string, f cpuFeatures) bool {
	switch goarch {
	case "amd64", "386":
		return f.x86AES && f.x86PCLMULQDQ
	case "arm64":
		return f.armAES && f.armPMULL
	case "s390x":
		return f.s390AES && f.s390AESCBC && f.s390AESCTR && (f.s390GHASH || f.s390AESGCM)
	case "ppc64le":
		return true
	}
	return false
}
