package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/definitions"
)

// errorWriter writes an error in one API's own shape.
type errorWriter func(w http.ResponseWriter, status int, msg string)

// methods routes one path by method, answering other methods with 405 and an
// Allow header in the API's error shape (net/http's own 405 is plain text).
func methods(onError errorWriter, handlers map[string]http.HandlerFunc) http.HandlerFunc {
	allowed := make([]string, 0, len(handlers))
	for m := range handlers {
		allowed = append(allowed, m)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handlers[r.Method]; ok {
			h(w, r)
			return
		}
		w.Header().Set("Allow", allow)
		onError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed")
	}
}

// readBody reads the whole body; it reports a body over the configured limit
// (confighttp wraps it in http.MaxBytesReader) as 413.
func readBody(w http.ResponseWriter, r *http.Request, onError errorWriter) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			onError(w, http.StatusRequestEntityTooLarge, "Request body too large")
			return nil, false
		}
		onError(w, http.StatusBadRequest, "Could not read request body")
		return nil, false
	}
	return body, true
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// refusal maps a pipeline error to the status the client gets: a permanent
// error means the data can never be accepted (400), anything else is
// backpressure (e.g. memory_limiter) that the client should retry (503).
func refusal(err error) (status int, msg string) {
	if consumererror.IsPermanent(err) {
		return http.StatusBadRequest, "The value was refused by the pipeline: " + err.Error()
	}
	return http.StatusServiceUnavailable, "The collector is temporarily unable to accept values; retry later"
}

// retryAfterSeconds is sent with 503 answers caused by backpressure.
const retryAfterSeconds = "1"

// equalSecret compares in constant time.
func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// storeFailure answers a failure of the definitions store in an API's own
// shape: 503 with Retry-After when the store's storage failed (nothing was
// changed; retry), 429 when the tenant is at max_definitions_per_tenant, and
// 500 with the API's own internal-error message otherwise. The cause, which
// may name files, goes to the log only.
func storeFailure(w http.ResponseWriter, logger *zap.Logger, api string, err error, onError errorWriter, internalMsg string) {
	switch {
	case errors.Is(err, definitions.ErrUnavailable):
		logger.Warn("Definitions store unavailable; answering 503", zap.String("api", api), zap.Error(errors.Unwrap(err)))
		w.Header().Set("Retry-After", retryAfterSeconds)
		onError(w, http.StatusServiceUnavailable, "The collector's definitions store is temporarily unavailable; retry later")
	case errors.Is(err, definitions.ErrQuota):
		onError(w, http.StatusTooManyRequests, "The tenant holds as many definitions as max_definitions_per_tenant allows; delete some first")
	default:
		logger.Error("API request failed", zap.String("api", api), zap.Error(err))
		onError(w, http.StatusInternalServerError, internalMsg)
	}
}
