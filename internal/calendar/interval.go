package calendar

import (
	"fmt"
	"strings"
)

// Interval is a calendar-aligned window length. The zero value is not a
// valid interval so that an unset config field is detectable.
type Interval uint8

// Supported intervals. Sub-day intervals align to the local wall clock;
// Week is the ISO-8601 week (Monday 00:00 to the next Monday 00:00).
const (
	FiveMinutes Interval = iota + 1
	Hour
	Day
	Week
	Month
	Year
)

// Intervals lists every valid Interval, shortest first.
var Intervals = [...]Interval{FiveMinutes, Hour, Day, Week, Month, Year}

const numIntervals = int(Year) + 1

var intervalNames = [numIntervals]string{"", "5m", "hour", "day", "week", "month", "year"}

// Valid reports whether iv is one of the defined intervals.
func (iv Interval) Valid() bool { return iv >= FiveMinutes && iv <= Year }

// String returns the canonical config name ("5m", "hour", "day", "week",
// "month", "year"); ParseInterval accepts it back.
func (iv Interval) String() string {
	if iv.Valid() {
		return intervalNames[iv]
	}
	return fmt.Sprintf("Interval(%d)", uint8(iv))
}

// ParseInterval parses an interval's canonical name (String), as configs and
// the custommetrics.interval metadata write it, in any case. Vendors'
// spellings ("Hourly", "five_minute") are not intervals here: they map in
// their wire packages (internal/wire/threatconnect, internal/wire/embrace).
func ParseInterval(s string) (Interval, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, iv := range Intervals {
		if intervalNames[iv] == name {
			return iv, nil
		}
	}
	return 0, fmt.Errorf("calendar: unknown interval %q (want %s)", s, strings.Join(intervalNames[1:], "|"))
}

// MarshalText implements encoding.TextMarshaler; invalid intervals are an
// error rather than a silently unparsable string.
func (iv Interval) MarshalText() ([]byte, error) {
	if !iv.Valid() {
		return nil, fmt.Errorf("calendar: cannot marshal invalid interval %d", uint8(iv))
	}
	return []byte(intervalNames[iv]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler so Interval can be used
// directly in collector (YAML/mapstructure) configs.
func (iv *Interval) UnmarshalText(b []byte) error {
	v, err := ParseInterval(string(b))
	if err != nil {
		return err
	}
	*iv = v
	return nil
}
