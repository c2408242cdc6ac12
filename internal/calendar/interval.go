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

// ParseInterval parses a config or API interval name, case-insensitively.
// It accepts the canonical names plus the spellings used by ThreatConnect
// (Hourly, Daily, Weekly, Monthly, Yearly) and Embrace (five_minute,
// hourly, daily), so payload vocabulary can be passed through unchanged.
func ParseInterval(s string) (Interval, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "5m", "5min", "five_minute", "five_minutes":
		return FiveMinutes, nil
	case "hour", "hourly", "1h":
		return Hour, nil
	case "day", "daily", "1d":
		return Day, nil
	case "week", "weekly":
		return Week, nil
	case "month", "monthly":
		return Month, nil
	case "year", "yearly":
		return Year, nil
	}
	return 0, fmt.Errorf("calendar: unknown interval %q (want 5m|five_minute|hour|hourly|day|daily|week|weekly|month|monthly|year|yearly)", s)
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
