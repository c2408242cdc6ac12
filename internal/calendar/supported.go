package calendar

import "time"

// The supported range of instants: every window of every interval, in every
// time zone, of an instant in [MinTime, MaxTime) has its start and end in
// the int64 Unix-nanosecond range (1677-09-21 to 2262-04-11), which is how
// OTLP data points carry time. Instants before 1970 travel in OTLP's uint64
// timestamps as the two's complement of their negative Unix nanoseconds, so
// every component of this bundle reads a timestamp as int64(ts).
var (
	MinTime = time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive

	minNanos = MinTime.UnixNano()
	maxNanos = MaxTime.UnixNano()
)

// Supported reports whether t lies in [MinTime, MaxTime).
func Supported(t time.Time) bool { return !t.Before(MinTime) && t.Before(MaxTime) }

// SupportedNanos reports whether Unix nanoseconds ns lie in [MinTime, MaxTime).
func SupportedNanos(ns int64) bool { return ns >= minNanos && ns < maxNanos }
