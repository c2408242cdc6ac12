package calendar

import "time"

// windowTime is the reference implementation on time.Time (t already in the
// target location). It relies only on the time package's zone rules.
func windowTime(iv Interval, t time.Time) (start, end time.Time) {
	loc := t.Location()
	switch iv {
	case FiveMinutes:
		return subDayWindow(t, 300)
	case Hour:
		return subDayWindow(t, 3600)
	case Day:
		y, m, d := t.Date()
		return dayStart(y, m, d, loc), dayStart(y, m, d+1, loc)
	case Week:
		y, m, d := t.Date()
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return dayStart(y, m, d-back, loc), dayStart(y, m, d-back+7, loc)
	case Month:
		y, m, _ := t.Date()
		return dayStart(y, m, 1, loc), dayStart(y, m+1, 1, loc)
	default: // Year
		y := t.Year()
		return dayStart(y, 1, 1, loc), dayStart(y+1, 1, 1, loc)
	}
}

// subDayWindow buckets the local wall clock by size seconds within the run
// of instants sharing t's UTC offset (see package doc).
//
// Zone boundaries are found by probing offsets rather than with
// time.Time.ZoneBounds, whose bounds are approximate beyond the zone's
// transition table (it reports year starts, and year+365d in leap years,
// which may even precede t).
func subDayWindow(t time.Time, size int64) (time.Time, time.Time) {
	loc := t.Location()
	_, off := t.Zone()
	o := int64(off)
	sec := t.Unix()
	start := floorDiv(sec+o, size)*size - o
	end := start + size
	if offsetAt(loc, start) != off {
		// The offset became off inside the bucket: start at that change.
		start = firstTrue(start, sec, func(u int64) bool { return offsetAt(loc, u) == off })
	}
	if offsetAt(loc, end-1) != off {
		end = firstTrue(sec+1, end-1, func(u int64) bool { return offsetAt(loc, u) != off })
	}
	return time.Unix(start, 0).In(loc), time.Unix(end, 0).In(loc)
}

func offsetAt(loc *time.Location, sec int64) int {
	_, off := time.Unix(sec, 0).In(loc).Zone()
	return off
}

// firstTrue returns the smallest u in [lo, hi] with pred(u), for a predicate
// that is monotone (false...true) on the range and true at hi.
func firstTrue(lo, hi int64, pred func(int64) bool) int64 {
	for lo < hi {
		mid := lo + (hi-lo)/2
		if pred(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// dayStart returns the first instant whose local date is y-m-d or later (d
// may be out of range and is normalised). Usually that is local midnight as
// computed by time.Date; when midnight is skipped or repeated by a DST change
// (America/Havana, Pacific/Apia 2011-12-30) time.Date's choice is
// unspecified, so the candidate is verified and otherwise replaced by a
// binary search on "local date >= y-m-d" (transitions fall on whole seconds).
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	y, m, d = time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
	c := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if c.Nanosecond() == 0 && cmpDate(c, y, m, d) >= 0 && cmpDate(c.Add(-time.Second), y, m, d) < 0 {
		return c
	}
	const span = 48 * 3600
	sec := c.Unix()
	u := firstTrue(sec-span, sec+span, func(u int64) bool {
		return cmpDate(time.Unix(u, 0).In(loc), y, m, d) >= 0
	})
	return time.Unix(u, 0).In(loc)
}

// cmpDate compares t's local date with y-m-d.
func cmpDate(t time.Time, y int, m time.Month, d int) int {
	ty, tm, td := t.Date()
	switch {
	case ty != y:
		return sign(ty - y)
	case tm != m:
		return sign(int(tm) - int(m))
	default:
		return sign(td - d)
	}
}

func sign(x int) int {
	if x < 0 {
		return -1
	}
	if x > 0 {
		return 1
	}
	return 0
}
