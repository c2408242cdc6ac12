package custommetricsreceiver // import "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

import (
	"fmt"
	"net/http"
)

// limitError is a request over one of the configured limits (LimitsConfig).
// Its text names the limit's setting, so that the operator of a refused
// client knows what to raise; status is the answer's.
type limitError struct {
	Setting string // e.g. "max_name_length"
	Status  int    // 400 for names and keys, 413 for values
	msg     string
}

func (e *limitError) Error() string { return e.msg }

func lengthError(what, setting string, got, limit int) *limitError {
	return &limitError{Setting: setting, Status: http.StatusBadRequest,
		msg: fmt.Sprintf("%s is %d bytes long; at most %d bytes are accepted (limits::%s)", what, got, limit, setting)}
}

// name refuses a metric or definition name longer than max_name_length bytes.
func (l LimitsConfig) name(what, v string) *limitError {
	if len(v) > l.MaxNameLength {
		return lengthError(what, "max_name_length", len(v), l.MaxNameLength)
	}
	return nil
}

// key refuses a key (a keyed value's key, an event key, a tag, an attribute
// key) longer than max_key_length bytes.
func (l LimitsConfig) key(what, v string) *limitError {
	if len(v) > l.MaxKeyLength {
		return lengthError(what, "max_key_length", len(v), l.MaxKeyLength)
	}
	return nil
}

// points refuses a request that would produce more than max_points_per_request values.
func (l LimitsConfig) points(n int) *limitError {
	if n > l.MaxPointsPerRequest {
		return &limitError{Setting: "max_points_per_request", Status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("the request would produce %d values; at most %d are accepted per request (limits::max_points_per_request)", n, l.MaxPointsPerRequest)}
	}
	return nil
}

// firstLimitError returns the first of errs that is not nil.
func firstLimitError(errs ...*limitError) *limitError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
