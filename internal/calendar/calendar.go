// Package calendar maps instants to calendar-aligned windows (5 minutes,
// hour, day, ISO week, month, year) in a given time zone.
//
// Contract:
//   - Windows are half-open [start, end): the start instant belongs to the
//     window, the end instant belongs to the next one. Consecutive windows
//     tile the time line without gaps or overlaps.
//   - Day, Week, Month and Year are labelled by the local calendar date, so a
//     DST day lasts 23 or 25 hours, a DST month is an hour shorter or longer.
//     A window starts at the first instant whose local date carries the label
//     (which is not 00:00 when midnight is skipped by a DST jump). Week is the
//     ISO-8601 week: Monday 00:00 local to the next Monday 00:00.
//   - FiveMinutes and Hour are local wall-clock buckets within one UTC offset:
//     a window holds the instants whose local wall clock truncates to the same
//     bucket AND that share the same UTC offset. Thus in America/New_York the
//     repeated 01:00 on the fall-back day is two one-hour windows (not one
//     two-hour window) and a 30-minute shift (Australia/Lord_Howe) yields a
//     30-minute hour window. In UTC and fixed-offset zones all windows of an
//     interval below Month have fixed length.
//   - WindowNanos works on Unix nanoseconds (the representation of OTLP data
//     points); results that would fall outside the int64 range (years before
//     1678 or after 2262) are clamped to math.MinInt64 / math.MaxInt64.
//     Window on time.Time has no such limit.
//
// A *Calendar is safe for concurrent use. It memoises the last window per
// interval and the current UTC-offset period with lock-free seqlocks, so the
// steady-state cost of WindowNanos is a few nanoseconds with no allocation.
package calendar

import (
	"errors"
	"math"
	"sync/atomic"
	"time"
)

const (
	secPerDay  = 86400
	nsPerSec   = int64(time.Second)
	nsPerDay   = secPerDay * nsPerSec
	nsPerWeek  = 7 * nsPerDay
	nsPer5Min  = 5 * int64(time.Minute)
	nsPerHour  = int64(time.Hour)
	unixToMon0 = 3 // 1970-01-01 was a Thursday: (days+3) mod 7 == 0 on Mondays
	// safeNs bounds the inputs handled by pure int64 arithmetic: two years of
	// head-room plus the largest UTC offset keep every intermediate in range.
	safeNs = math.MaxInt64 - 2*366*nsPerDay - 2*nsPerDay
)

// Calendar computes windows in one time zone. The zero value is a valid UTC
// calendar. Use NewCalendar for other zones; do not copy a Calendar after
// first use (it holds atomic caches).
type Calendar struct {
	loc *time.Location
	// dst is false when the zone has a single, permanent UTC offset (UTC,
	// time.FixedZone, Etc/GMT+5 ...); then offNs applies to every instant and
	// all windows are pure arithmetic.
	dst   bool
	offNs int64

	// Caches (the window memo is used for Month/Year only when !dst).
	win  [numIntervals]seqCache // last window per interval: a=start, b=end
	zone seqCache               // current offset period: a=from, b=to, c=offset ns
}

// NewCalendar returns a calendar for loc; nil means UTC.
func NewCalendar(loc *time.Location) *Calendar {
	c := &Calendar{loc: loc}
	if loc == nil || loc == time.UTC {
		c.loc = nil
		return c
	}
	// A zone that "goes on forever" from the epoch in both directions has a
	// single offset for all time.
	t := time.Unix(0, 0).In(loc)
	zs, ze := t.ZoneBounds()
	_, off := t.Zone()
	c.offNs = int64(off) * nsPerSec
	c.dst = !(zs.IsZero() && ze.IsZero())
	return c
}

// LoadCalendar returns a calendar for an IANA zone name ("" and "UTC" mean
// UTC, "Local" the host zone), as accepted by time.LoadLocation.
func LoadCalendar(name string) (*Calendar, error) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	return NewCalendar(loc), nil
}

var utcCalendar Calendar

// UTC returns the shared UTC calendar.
func UTC() *Calendar { return &utcCalendar }

// Location returns the calendar's zone (never nil).
func (c *Calendar) Location() *time.Location {
	if c.loc == nil {
		return time.UTC
	}
	return c.loc
}

// ErrInvalidInterval is the panic value when an invalid Interval reaches the
// hot path; intervals are expected to be validated when config is parsed.
var ErrInvalidInterval = errors.New("calendar: invalid interval")

// Window returns the window of interval iv that contains t, as times in the
// calendar's location. It supports the full time.Time range and is the
// reference implementation that WindowNanos is tested against.
func (c *Calendar) Window(iv Interval, t time.Time) (start, end time.Time) {
	if !iv.Valid() {
		panic(ErrInvalidInterval)
	}
	return windowTime(iv, t.In(c.Location()))
}

// Contains reports whether the window [start, end) holds ns; a tiny helper so
// callers do not get the bound inclusivity wrong.
func Contains(startNs, endNs, ns int64) bool { return startNs <= ns && ns < endNs }

// WindowNanos returns the window of interval iv holding the instant ns (Unix
// nanoseconds) as Unix nanoseconds [startNs, endNs). It does not allocate.
// It panics with ErrInvalidInterval if iv is not valid.
func (c *Calendar) WindowNanos(iv Interval, ns int64) (startNs, endNs int64) {
	if !iv.Valid() {
		panic(ErrInvalidInterval)
	}
	if ns > safeNs || ns < -safeNs {
		return c.slowNanos(iv, ns, false)
	}
	if !c.dst {
		if iv < Month {
			return fixedWindow(iv, ns, c.offNs)
		}
		// Civil-date arithmetic costs ~30ns; the memo costs ~3ns.
		if s, e, _, ok := c.win[iv].load(); ok && s <= ns && ns < e {
			return s, e
		}
		s, e := fixedWindow(iv, ns, c.offNs)
		c.win[iv].store(s, e, 0)
		return s, e
	}
	// 1. Last window for this interval.
	if s, e, _, ok := c.win[iv].load(); ok && s <= ns && ns < e {
		return s, e
	}
	// 2. Current offset period: below Month, a window that lies strictly
	// inside a constant-offset period is plain arithmetic. Day and Week keep a
	// one-day margin so a neighbouring backward jump cannot extend the label.
	if iv <= Week {
		if zs, ze, off, ok := c.zone.load(); ok && zs <= ns && ns < ze {
			s, e := fixedWindow(iv, ns, off)
			margin := int64(0)
			if iv >= Day {
				margin = nsPerDay
			}
			if s-margin >= zs && e+margin <= ze {
				c.win[iv].store(s, e, 0)
				return s, e
			}
		}
	}
	return c.slowNanos(iv, ns, true)
}

// slowNanos evaluates the window with the time package and refreshes the
// caches.
func (c *Calendar) slowNanos(iv Interval, ns int64, cache bool) (int64, int64) {
	t := time.Unix(0, ns).In(c.Location())
	s, e := windowTime(iv, t)
	startNs, endNs := clampNanos(s), clampNanos(e)
	if cache && c.dst {
		c.win[iv].store(startNs, endNs, 0)
		if zs, ze, off, ok := constantOffsetRun(t); ok {
			c.zone.store(zs, ze, off)
		}
	}
	return startNs, endNs
}

// constantOffsetRun returns a range [zs, ze) (Unix ns) around t over which
// the UTC offset (returned in ns) is constant. It uses ZoneBounds but only
// trusts bounds that contain t and carry t's offset on both ends: beyond the
// zone's transition table Go reports approximate bounds (year starts, and a
// year-end that is a day early in leap years). A shorter-than-maximal range
// only costs cache misses; a wrong one would cost correctness.
func constantOffsetRun(t time.Time) (zs, ze, offNs int64, ok bool) {
	_, off := t.Zone()
	s, e := t.ZoneBounds()
	zs, ze = math.MinInt64, math.MaxInt64
	if !s.IsZero() {
		if s.After(t) {
			return 0, 0, 0, false
		}
		if _, o := s.Zone(); o != off {
			return 0, 0, 0, false
		}
		zs = clampNanos(s)
	}
	if !e.IsZero() {
		if !e.After(t) {
			return 0, 0, 0, false
		}
		if _, o := e.Add(-time.Nanosecond).Zone(); o != off {
			return 0, 0, 0, false
		}
		ze = clampNanos(e)
	}
	return zs, ze, int64(off) * nsPerSec, true
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func clampNanos(t time.Time) int64 {
	if t.Before(minNanoTime) {
		return math.MinInt64
	}
	if t.After(maxNanoTime) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fixedWindow computes the window for a constant UTC offset (ns). The caller
// guarantees |ns| <= safeNs.
func fixedWindow(iv Interval, ns, offNs int64) (int64, int64) {
	local := ns + offNs
	switch iv {
	case FiveMinutes:
		s := floorDiv(local, nsPer5Min)*nsPer5Min - offNs
		return s, s + nsPer5Min
	case Hour:
		s := floorDiv(local, nsPerHour)*nsPerHour - offNs
		return s, s + nsPerHour
	case Day:
		s := floorDiv(local, nsPerDay)*nsPerDay - offNs
		return s, s + nsPerDay
	case Week:
		days := floorDiv(local, nsPerDay)
		mon := days - floorMod(days+unixToMon0, 7)
		s := mon*nsPerDay - offNs
		return s, s + nsPerWeek
	case Month:
		y, m, _ := civilFromDays(floorDiv(local, nsPerDay))
		ny, nm := y, m+1
		if nm > 12 {
			ny, nm = y+1, 1
		}
		return daysFromCivil(y, m, 1)*nsPerDay - offNs, daysFromCivil(ny, nm, 1)*nsPerDay - offNs
	default: // Year
		y, _, _ := civilFromDays(floorDiv(local, nsPerDay))
		return daysFromCivil(y, 1, 1)*nsPerDay - offNs, daysFromCivil(y+1, 1, 1)*nsPerDay - offNs
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// daysFromCivil returns days since 1970-01-01 of the proleptic Gregorian
// date y-m-d (H. Hinnant's algorithm; exact for the whole int64 ns range).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// seqCache is a single-writer-wins seqlock over three int64s. Readers never
// block; a writer that loses the race simply skips caching. All accesses are
// atomic, so it is race-detector clean.
type seqCache struct {
	seq     atomic.Uint64 // even: stable (0 = never written); odd: write in progress
	a, b, c atomic.Int64
}

func (s *seqCache) load() (a, b, c int64, ok bool) {
	v := s.seq.Load()
	if v == 0 || v&1 != 0 {
		return 0, 0, 0, false
	}
	a, b, c = s.a.Load(), s.b.Load(), s.c.Load()
	if s.seq.Load() != v {
		return 0, 0, 0, false
	}
	return a, b, c, true
}

func (s *seqCache) store(a, b, c int64) {
	v := s.seq.Load()
	if v&1 != 0 || !s.seq.CompareAndSwap(v, v+1) {
		return
	}
	s.a.Store(a)
	s.b.Store(b)
	s.c.Store(c)
	s.seq.Store(v + 2)
}
