package azure

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/openkes/kes/internal/keystore"
)

// VaultError is an error answer of Key Vault: its status and error codes.
// Its text is short and never holds a secret value; the SDK's full error
// (with the answer body) is reachable with errors.As as an
// *azcore.ResponseError.
type VaultError struct {
	StatusCode int
	Code       string // error.code, e.g. "Conflict", "SecretNotFound"
	InnerCode  string // error.innererror.code, e.g. "ObjectIsBeingDeleted"
	Err        *azcore.ResponseError
}

func (e *VaultError) Error() string {
	msg := fmt.Sprintf("key vault answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Code != "" && e.InnerCode != "":
		msg += fmt.Sprintf(" (%s: %s)", e.Code, e.InnerCode)
	case e.Code != "":
		msg += " (" + e.Code + ")"
	}
	return msg
}

func (e *VaultError) Unwrap() error { return e.Err }

// vaultErr returns err as a *VaultError if it is a Key Vault answer, with
// the inner error code read from the answer body; else nil.
func vaultErr(err error) *VaultError {
	var v *VaultError
	if errors.As(err, &v) {
		return v
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return nil
	}
	v = &VaultError{StatusCode: re.StatusCode, Code: re.ErrorCode, Err: re}
	if re.RawResponse != nil {
		if body, err := runtime.Payload(re.RawResponse); err == nil {
			var b struct {
				Error struct {
					Code       string `json:"code"`
					InnerError struct {
						Code string `json:"code"`
					} `json:"innererror"`
				} `json:"error"`
			}
			if json.Unmarshal(body, &b) == nil {
				if v.Code == "" {
					v.Code = b.Error.Code
				}
				v.InnerCode = b.Error.InnerError.Code
			}
		}
	}
	return v
}

// fail wraps err of operation op on key name: keystore.ErrNotFound for a
// 404, the context's error when it ended, a [*keystore.UnreachableError]
// when Key Vault or Microsoft Entra could not be reached (or answered with
// a 5xx after all retries), else a short error naming the status and codes.
func (s *Store) fail(ctx context.Context, op, name string, err error) error {
	prefix := fmt.Sprintf("azure: %s key %q", op, name)
	if op == "list" {
		prefix = "azure: list keys"
	}
	if notFound(err) {
		return fmt.Errorf("%s: %w", prefix, keystore.ErrNotFound)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", prefix, ctxErr)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		status := 0
		if authErr.RawResponse != nil {
			status = authErr.RawResponse.StatusCode
		}
		if status == 0 || status >= 500 {
			return &keystore.UnreachableError{Err: fmt.Errorf("%s: authentication failed: %w", prefix, err)}
		}
		return fmt.Errorf("%s: authentication failed: token endpoint answered %d %s%s", prefix, status, http.StatusText(status), entraCode(authErr.RawResponse))
	}
	if e := vaultErr(err); e != nil {
		if e.StatusCode >= 500 {
			return &keystore.UnreachableError{Err: fmt.Errorf("%s: %w", prefix, e)}
		}
		return fmt.Errorf("%s: %w", prefix, e)
	}
	// No answer at all: DNS, connection refused, TLS.
	var netErr net.Error
	if errors.As(err, &netErr) {
		return &keystore.UnreachableError{Err: fmt.Errorf("%s: %w", prefix, err)}
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// entraCode returns " (<error>, AADSTS<n>)" from a Microsoft Entra error
// answer, or "" if it has none. Entra's error codes name the cause (a wrong
// client secret is invalid_client, AADSTS7000215) and hold no secret.
func entraCode(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	var e struct {
		Error      string `json:"error"`
		ErrorCodes []int  `json:"error_codes"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	if len(e.ErrorCodes) > 0 {
		return fmt.Sprintf(" (%s, AADSTS%d)", e.Error, e.ErrorCodes[0])
	}
	return " (" + e.Error + ")"
}

// randN returns a random number in [0, n) (0 if n <= 0).
func randN(n int64) int64 {
	if n <= 0 {
		return 0
	}
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) % uint64(n))
}
