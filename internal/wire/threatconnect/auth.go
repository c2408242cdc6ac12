package threatconnect // import "github.com/custommetrics/bundle/internal/wire/threatconnect"

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Authorization schemes, as ThreatConnect's SDKs send them.
const (
	// TokenScheme prefixes an API token: "Authorization: TC-Token <token>".
	TokenScheme = "TC-Token "
	// HMACScheme prefixes an access ID and signature: "Authorization: TC <accessId>:<signature>".
	HMACScheme = "TC "
	// TimestampHeader carries the Unix time (seconds) that an HMAC signature covers.
	TimestampHeader = "Timestamp"
	// MaxClockSkew is how far a signed request's Timestamp may be from the server clock.
	MaxClockSkew = 5 * time.Minute
)

// Sign returns the Base64 HMAC-SHA256 signature that ThreatConnect's SDKs send:
// over "<path with query>:<METHOD>:<unix timestamp>", keyed with the secret key.
func Sign(secretKey, pathWithQuery, method string, unix int64) string {
	mac := hmac.New(sha256.New, []byte(secretKey))
	mac.Write([]byte(pathWithQuery))
	mac.Write([]byte{':'})
	mac.Write([]byte(method))
	mac.Write([]byte{':'})
	mac.Write(strconv.AppendInt(nil, unix, 10))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// HMACAuthorization returns the Authorization header value for a signed request.
func HMACAuthorization(accessID, signature string) string {
	return HMACScheme + accessID + ":" + signature
}

// Credentials is what a request presents in its Authorization header.
type Credentials struct {
	Token     string // set for TC-Token
	AccessID  string // set for HMAC
	Signature string // set for HMAC
}

// Errors of ParseAuthorization.
var (
	ErrNoAuthorization  = errors.New("no authorization header")
	ErrBadAuthorization = errors.New("malformed authorization header")
)

// ParseAuthorization splits an Authorization header into token or HMAC credentials.
func ParseAuthorization(header string) (Credentials, error) {
	switch {
	case header == "":
		return Credentials{}, ErrNoAuthorization
	case strings.HasPrefix(header, TokenScheme):
		tok := strings.TrimSpace(header[len(TokenScheme):])
		if tok == "" {
			return Credentials{}, ErrBadAuthorization
		}
		return Credentials{Token: tok}, nil
	case strings.HasPrefix(header, HMACScheme):
		id, sig, ok := strings.Cut(strings.TrimSpace(header[len(HMACScheme):]), ":")
		if !ok || id == "" || sig == "" {
			return Credentials{}, ErrBadAuthorization
		}
		return Credentials{AccessID: id, Signature: sig}, nil
	default:
		return Credentials{}, ErrBadAuthorization
	}
}

// Failure is an error whose text is ThreatConnect's own failure message,
// which a server sends to clients verbatim.
type Failure string

func (f Failure) Error() string { return string(f) }

// Failures, with ThreatConnect's own messages.
const (
	ErrTimestampInvalid  Failure = "Invalid timestamp"
	ErrTimestampRange    Failure = "Timestamp out of acceptable time range"
	ErrSignatureMismatch Failure = "Signature data did not match expected result"
	ErrAccessDenied      Failure = "Access Denied"
	ErrUnauthorized      Failure = "Unauthorized"
	ErrPaging            Failure = "The resultStart and resultLimit query parameters must be integers and the maximum value for resultLimit is 500"
)

// VerifySignature checks an HMAC signature in constant time and the timestamp
// against now within MaxClockSkew.
func VerifySignature(secretKey, pathWithQuery, method, timestamp, signature string, now time.Time) error {
	return VerifySignatureWithin(secretKey, pathWithQuery, method, timestamp, signature, now, MaxClockSkew)
}

// VerifySignatureWithin is VerifySignature with the allowed clock skew given.
// The signature does not cover the body: the skew is the window in which a
// captured request can be replayed, with any body.
func VerifySignatureWithin(secretKey, pathWithQuery, method, timestamp, signature string, now time.Time, maxSkew time.Duration) error {
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrTimestampInvalid
	}
	skew := now.Sub(time.Unix(unix, 0))
	if skew > maxSkew || skew < -maxSkew {
		return ErrTimestampRange
	}
	want := Sign(secretKey, pathWithQuery, method, unix)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return ErrSignatureMismatch
	}
	return nil
}
