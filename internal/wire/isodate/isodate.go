// Package isodate parses the ISO 8601 dates that the vendor APIs accept.
package isodate // import "github.com/custommetrics/bundle/internal/wire/isodate"

import (
	"errors"
	"fmt"
	"time"

	"github.com/custommetrics/bundle/internal/calendar"
)

// ErrRange: the date is valid ISO 8601 but outside the supported range.
var ErrRange = errors.New("out of range")

// layouts are the accepted ISO 8601 forms, most specific first.
var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05", // the space form some clients send
	"2006-01-02",
}

// Parse parses an ISO 8601 date and time; forms without a zone are UTC.
// Dates outside the supported range (calendar.MinTime to calendar.MaxTime)
// are refused: their windows cannot be stored exactly.
func Parse(s string) (time.Time, error) {
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			if !calendar.Supported(t) {
				return time.Time{}, fmt.Errorf("date %q is %w: dates from %s to %s are supported",
					s, ErrRange, calendar.MinTime.Format(time.DateOnly), calendar.MaxTime.Add(-time.Nanosecond).Format(time.DateOnly))
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q: use ISO 8601, e.g. 2018-10-19T14:44:00Z", s)
}
