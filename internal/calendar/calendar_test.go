package calendar

import (
	"encoding"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // deterministic zone data regardless of the host
)

var _ encoding.TextUnmarshaler = (*Interval)(nil)
var _ encoding.TextMarshaler = Interval(0)

func mustCal(t testing.TB, name string) *Calendar {
	t.Helper()
	c, err := LoadCalendar(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Interval
	}{
		{"5m", FiveMinutes}, {"hour", Hour}, {"day", Day}, {"week", Week}, {"month", Month}, {"year", Year},
		{"HOUR", Hour}, {"5M", FiveMinutes}, {" day ", Day},
	} {
		got, err := ParseInterval(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	// Vendors' spellings map in internal/wire/*, and there are no aliases.
	for _, bad := range []string{"", "minute", "10m", "quarterly", "hourlyy",
		"Hourly", "Daily", "Weekly", "Monthly", "Yearly", // ThreatConnect
		"five_minute", "hourly", "daily", // Embrace
		"5min", "five_minutes", "1h", "1d", "60m", "24h"} {
		if _, err := ParseInterval(bad); err == nil {
			t.Errorf("ParseInterval(%q) succeeded", bad)
		}
	}
	for _, iv := range Intervals {
		b, err := iv.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Interval
		if err := back.UnmarshalText(b); err != nil || back != iv || iv.String() != string(b) {
			t.Errorf("round trip %v -> %q -> %v (%v)", iv, b, back, err)
		}
	}
	if _, err := Interval(0).MarshalText(); err == nil {
		t.Error("marshal of zero interval succeeded")
	}
	if s := Interval(42).String(); s != "Interval(42)" {
		t.Errorf("String of invalid = %q", s)
	}
}

type windowCase struct {
	name, zone string
	iv         Interval
	in         string // RFC 3339 instant
	start, end string // expected window
}

var windowCases = []windowCase{
	// UTC basics, start inclusive / end exclusive.
	{"5m mid", "UTC", FiveMinutes, "2024-02-29T23:57:30Z", "2024-02-29T23:55:00Z", "2024-03-01T00:00:00Z"},
	{"5m exact start", "UTC", FiveMinutes, "2024-02-29T23:55:00Z", "2024-02-29T23:55:00Z", "2024-03-01T00:00:00Z"},
	{"5m end belongs to next", "UTC", FiveMinutes, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:05:00Z"},
	{"hour last ns", "UTC", Hour, "2024-02-29T23:59:59.999999999Z", "2024-02-29T23:00:00Z", "2024-03-01T00:00:00Z"},
	{"leap day", "UTC", Day, "2024-02-29T12:00:00Z", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
	{"leap Feb", "UTC", Month, "2024-02-29T12:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
	{"non-leap Feb", "UTC", Month, "2023-02-28T23:59:59Z", "2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z"},
	{"century non-leap Feb 2100", "UTC", Month, "2100-02-28T00:00:00Z", "2100-02-01T00:00:00Z", "2100-03-01T00:00:00Z"},
	{"400y leap Feb 2000", "UTC", Month, "2000-02-29T00:00:00Z", "2000-02-01T00:00:00Z", "2000-03-01T00:00:00Z"},
	{"December", "UTC", Month, "2024-12-31T23:59:59Z", "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"},
	{"leap year", "UTC", Year, "2024-12-31T23:59:59.999999999Z", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
	{"year exact start", "UTC", Year, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
	{"week of leap day", "UTC", Week, "2024-02-29T00:00:00Z", "2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z"},
	{"week exact Monday", "UTC", Week, "2024-02-26T00:00:00Z", "2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z"},
	{"week Sunday last ns", "UTC", Week, "2024-03-03T23:59:59.999999999Z", "2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z"},
	// ISO weeks across year boundaries.
	{"2020-W53 from Jan 3 2021", "UTC", Week, "2021-01-03T23:59:59Z", "2020-12-28T00:00:00Z", "2021-01-04T00:00:00Z"},
	{"2026-W53 from Jan 1 2027", "UTC", Week, "2027-01-01T10:00:00Z", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z"},
	{"2025-W01 starts in 2024", "UTC", Week, "2024-12-31T10:00:00Z", "2024-12-30T00:00:00Z", "2025-01-06T00:00:00Z"},
	{"2022-W52 holds Jan 1 2023", "UTC", Week, "2023-01-01T10:00:00Z", "2022-12-26T00:00:00Z", "2023-01-02T00:00:00Z"},
	// Before 1970.
	{"pre-epoch 5m", "UTC", FiveMinutes, "1969-12-31T23:59:59.5Z", "1969-12-31T23:55:00Z", "1970-01-01T00:00:00Z"},
	{"pre-epoch hour exact", "UTC", Hour, "1969-12-31T23:00:00Z", "1969-12-31T23:00:00Z", "1970-01-01T00:00:00Z"},
	{"pre-epoch week", "UTC", Week, "1969-12-31T12:00:00Z", "1969-12-29T00:00:00Z", "1970-01-05T00:00:00Z"},
	{"pre-epoch day", "UTC", Day, "1969-12-31T00:00:00Z", "1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"},
	{"1900 Feb not leap", "UTC", Month, "1900-02-15T00:00:00Z", "1900-02-01T00:00:00Z", "1900-03-01T00:00:00Z"},
	{"1700 year", "UTC", Year, "1700-06-01T00:00:00Z", "1700-01-01T00:00:00Z", "1701-01-01T00:00:00Z"},
	// Far future.
	{"2200 week", "UTC", Week, "2200-01-01T00:00:00Z", "2199-12-30T00:00:00Z", "2200-01-06T00:00:00Z"},
	{"2262 month", "UTC", Month, "2262-03-31T00:00:00Z", "2262-03-01T00:00:00Z", "2262-04-01T00:00:00Z"},
	// Fixed offset zone (no DST).
	{"Kolkata day", "Asia/Kolkata", Day, "2024-06-01T23:00:00+05:30", "2024-06-01T00:00:00+05:30", "2024-06-02T00:00:00+05:30"},
	{"Kolkata hour half-offset", "Asia/Kolkata", Hour, "2024-06-01T10:29:00Z", "2024-06-01T09:30:00Z", "2024-06-01T10:30:00Z"},
	{"Etc/GMT+5 year", "Etc/GMT+5", Year, "2025-01-01T02:00:00Z", "2024-01-01T00:00:00-05:00", "2025-01-01T00:00:00-05:00"},
	{"Kathmandu 5m (+05:45)", "Asia/Kathmandu", FiveMinutes, "2024-06-01T00:03:00Z", "2024-06-01T00:00:00Z", "2024-06-01T00:05:00Z"},
	// America/New_York DST: spring forward 2024-03-10 02:00 EST -> 03:00 EDT.
	{"NY spring day 23h", "America/New_York", Day, "2024-03-10T12:00:00-04:00", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00"},
	{"NY spring hour before gap", "America/New_York", Hour, "2024-03-10T01:59:59-05:00", "2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"},
	{"NY spring hour after gap", "America/New_York", Hour, "2024-03-10T03:00:00-04:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"},
	{"NY spring week", "America/New_York", Week, "2024-03-10T23:00:00-04:00", "2024-03-04T00:00:00-05:00", "2024-03-11T00:00:00-04:00"},
	{"NY March", "America/New_York", Month, "2024-03-31T23:59:00-04:00", "2024-03-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00"},
	// fall back 2024-11-03 02:00 EDT -> 01:00 EST: 01:xx happens twice.
	{"NY fall day 25h", "America/New_York", Day, "2024-11-03T01:30:00-05:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00"},
	{"NY fall first 01h", "America/New_York", Hour, "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00"},
	{"NY fall second 01h", "America/New_York", Hour, "2024-11-03T01:30:00-05:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"},
	{"NY fall 5m before switch", "America/New_York", FiveMinutes, "2024-11-03T01:57:00-04:00", "2024-11-03T01:55:00-04:00", "2024-11-03T01:00:00-05:00"},
	{"NY year differs from UTC year", "America/New_York", Year, "2024-12-31T23:30:00-05:00", "2024-01-01T00:00:00-05:00", "2025-01-01T00:00:00-05:00"},
	{"NY 1880 LMT hour (-04:56:02)", "America/New_York", Hour, "1880-06-15T17:30:02Z", "1880-06-15T16:56:02Z", "1880-06-15T17:56:02Z"},
	{"NY 1880 LMT 5m", "America/New_York", FiveMinutes, "1880-06-15T17:30:02Z", "1880-06-15T17:26:02Z", "1880-06-15T17:31:02Z"},
	// Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET.
	{"Berlin spring day", "Europe/Berlin", Day, "2024-03-31T12:00:00+02:00", "2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"},
	{"Berlin fall day", "Europe/Berlin", Day, "2024-10-27T12:00:00+01:00", "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00"},
	{"Berlin fall first 02h", "Europe/Berlin", Hour, "2024-10-27T02:30:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"},
	{"Berlin fall second 02h", "Europe/Berlin", Hour, "2024-10-27T02:30:00+01:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"},
	{"Berlin year", "Europe/Berlin", Year, "2024-12-31T23:30:00Z", "2025-01-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00"},
	// Australia/Lord_Howe: +10:30 standard, +11 DST, 30-minute shifts at 02:00.
	{"LH spring hour before", "Australia/Lord_Howe", Hour, "2024-10-06T01:30:00+10:30", "2024-10-06T01:00:00+10:30", "2024-10-06T02:00:00+10:30"},
	{"LH spring short hour", "Australia/Lord_Howe", Hour, "2024-10-06T02:45:00+11:00", "2024-10-06T02:30:00+11:00", "2024-10-06T03:00:00+11:00"},
	{"LH spring day 23.5h", "Australia/Lord_Howe", Day, "2024-10-06T12:00:00+11:00", "2024-10-06T00:00:00+10:30", "2024-10-07T00:00:00+11:00"},
	{"LH fall first 01h", "Australia/Lord_Howe", Hour, "2024-04-07T01:45:00+11:00", "2024-04-07T01:00:00+11:00", "2024-04-07T02:00:00+11:00"},
	{"LH fall repeated half hour", "Australia/Lord_Howe", Hour, "2024-04-07T01:45:00+10:30", "2024-04-07T01:30:00+10:30", "2024-04-07T02:00:00+10:30"},
	{"LH fall next hour", "Australia/Lord_Howe", Hour, "2024-04-07T02:10:00+10:30", "2024-04-07T02:00:00+10:30", "2024-04-07T03:00:00+10:30"},
	{"LH fall 5m", "Australia/Lord_Howe", FiveMinutes, "2024-04-07T01:47:00+10:30", "2024-04-07T01:45:00+10:30", "2024-04-07T01:50:00+10:30"},
	{"LH fall day 24.5h", "Australia/Lord_Howe", Day, "2024-04-07T12:00:00+10:30", "2024-04-07T00:00:00+11:00", "2024-04-08T00:00:00+10:30"},
	// America/Havana switches at midnight: 00:00 is skipped in March and
	// repeated in November.
	{"Havana skipped midnight", "America/Havana", Day, "2024-03-10T12:00:00-04:00", "2024-03-10T01:00:00-04:00", "2024-03-11T00:00:00-04:00"},
	{"Havana day before skip", "America/Havana", Day, "2024-03-09T12:00:00-05:00", "2024-03-09T00:00:00-05:00", "2024-03-10T01:00:00-04:00"},
	{"Havana repeated midnight", "America/Havana", Day, "2024-11-03T00:30:00-05:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00"},
	{"Havana day before repeat", "America/Havana", Day, "2024-11-02T12:00:00-04:00", "2024-11-02T00:00:00-04:00", "2024-11-03T00:00:00-04:00"},
	// Beyond the tz table Go's ZoneBounds is approximate (leap-year end bug).
	{"Berlin 2068 leap year-end 5m", "Europe/Berlin", FiveMinutes, "2068-12-31T14:31:57+01:00", "2068-12-31T14:30:00+01:00", "2068-12-31T14:35:00+01:00"},
	{"Berlin 2068 leap year-end day", "Europe/Berlin", Day, "2068-12-31T14:31:57+01:00", "2068-12-31T00:00:00+01:00", "2069-01-01T00:00:00+01:00"},
	{"Berlin 2240 fall second 02h", "Europe/Berlin", Hour, "2240-10-25T02:10:00+01:00", "2240-10-25T02:00:00+01:00", "2240-10-25T03:00:00+01:00"},
	{"Berlin 2240 fall first 02h", "Europe/Berlin", Hour, "2240-10-25T02:10:00+02:00", "2240-10-25T02:00:00+02:00", "2240-10-25T02:00:00+01:00"},
	{"Berlin 2240 fall day", "Europe/Berlin", Day, "2240-10-25T02:10:00+01:00", "2240-10-25T00:00:00+02:00", "2240-10-26T00:00:00+01:00"},
	// Pacific/Apia skipped 2011-12-30 entirely.
	{"Apia day before skipped date", "Pacific/Apia", Day, "2011-12-29T12:00:00-10:00", "2011-12-29T00:00:00-10:00", "2011-12-31T00:00:00+14:00"},
	{"Apia day after skipped date", "Pacific/Apia", Day, "2011-12-31T12:00:00+14:00", "2011-12-31T00:00:00+14:00", "2012-01-01T00:00:00+14:00"},
}

func TestWindowTable(t *testing.T) {
	for _, tc := range windowCases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCal(t, tc.zone)
			in, ws, we := mustTime(t, tc.in), mustTime(t, tc.start), mustTime(t, tc.end)
			s, e := c.Window(tc.iv, in)
			if !s.Equal(ws) || !e.Equal(we) {
				t.Fatalf("Window(%v, %s) = [%s, %s), want [%s, %s)", tc.iv, tc.in,
					s.Format(time.RFC3339), e.Format(time.RFC3339), tc.start, tc.end)
			}
			if s.Location() != c.Location() {
				t.Errorf("result location %v, want %v", s.Location(), c.Location())
			}
			// The nanosecond path must agree, both cold and warm.
			for range 2 {
				sn, en := c.WindowNanos(tc.iv, in.UnixNano())
				if sn != ws.UnixNano() || en != we.UnixNano() {
					t.Fatalf("WindowNanos = [%s, %s), want [%s, %s)", time.Unix(0, sn).UTC(), time.Unix(0, en).UTC(), ws.UTC(), we.UTC())
				}
			}
		})
	}
}

func TestISOWeek53(t *testing.T) {
	c := UTC()
	for _, y := range []int{2015, 2020, 2026, 2032} {
		s, e := c.Window(Week, time.Date(y, 12, 31, 12, 0, 0, 0, time.UTC))
		if iy, w := s.ISOWeek(); iy != y || w != 53 || e.Sub(s) != 7*24*time.Hour || s.Weekday() != time.Monday {
			t.Errorf("%d: week starting %s is %d-W%d", y, s, iy, w)
		}
	}
}

func TestNanosClamp(t *testing.T) {
	c := UTC()
	s, e := c.WindowNanos(Year, math.MaxInt64)
	if s != mustTime(t, "2262-01-01T00:00:00Z").UnixNano() || e != math.MaxInt64 {
		t.Errorf("max: [%d, %d)", s, e)
	}
	s, e = c.WindowNanos(Year, math.MinInt64)
	if s != math.MinInt64 || e != mustTime(t, "1678-01-01T00:00:00Z").UnixNano() {
		t.Errorf("min: [%d, %d)", s, e)
	}
	// time.Time has no such limit.
	ws, we := c.Window(Month, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
	if !ws.Equal(time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC)) || !we.Equal(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("9999: [%s, %s)", ws, we)
	}
	ny := mustCal(t, "America/New_York")
	for _, ns := range []int64{math.MaxInt64, math.MinInt64, safeNs + 1, -safeNs - 1} {
		for _, iv := range Intervals {
			s, e := ny.WindowNanos(iv, ns)
			if !(s <= ns && (ns < e || e == math.MaxInt64)) {
				t.Errorf("%v at %d: [%d, %d)", iv, ns, s, e)
			}
		}
	}
}

func TestInvalidIntervalPanics(t *testing.T) {
	defer func() {
		if recover() != ErrInvalidInterval {
			t.Error("expected ErrInvalidInterval panic")
		}
	}()
	UTC().WindowNanos(0, 0)
}

func TestZeroValueAndNil(t *testing.T) {
	var c Calendar
	if c.Location() != time.UTC || NewCalendar(nil).Location() != time.UTC {
		t.Fatal("zero/nil calendar is not UTC")
	}
	if s, e := c.WindowNanos(Day, 1); s != 0 || e != nsPerDay {
		t.Errorf("zero calendar day = [%d,%d)", s, e)
	}
	if NewCalendar(time.FixedZone("X", 3600)).dst {
		t.Error("fixed zone treated as DST zone")
	}
	if !mustCal(t, "Europe/Berlin").dst {
		t.Error("Berlin treated as fixed")
	}
}

// label is an independent definition of "which window": instants are in
// the same window iff their labels are equal.
func label(iv Interval, t time.Time) string {
	switch iv {
	case FiveMinutes, Hour:
		size := int64(300)
		if iv == Hour {
			size = 3600
		}
		_, off := t.Zone()
		return fmt.Sprint(floorDiv(t.Unix()+int64(off), size), off)
	case Day:
		return t.Format("2006-01-02")
	case Week:
		y, w := t.ISOWeek()
		return fmt.Sprint(y, w)
	case Month:
		return t.Format("2006-01")
	default:
		return fmt.Sprint(t.Year())
	}
}

var propZones = []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
	"America/Havana", "Asia/Kolkata", "America/Santiago", "Pacific/Chatham", "Europe/London"}

// transitions lists the offset changes of a zone between two years.
func transitions(loc *time.Location, from, to int) []time.Time {
	var out []time.Time
	t := time.Date(from, 1, 1, 0, 0, 0, 0, loc)
	end := time.Date(to, 1, 1, 0, 0, 0, 0, loc)
	for t.Before(end) {
		_, ze := t.ZoneBounds()
		if ze.IsZero() {
			break
		}
		out = append(out, ze)
		t = ze
	}
	return out
}

// TestWindowProperties checks, on random instants concentrated around DST
// transitions, that windows contain the instant, are maximal runs of equal
// labels, tile the time line, and that WindowNanos agrees with Window.
func TestWindowProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, zone := range propZones {
		c := mustCal(t, zone)
		loc := c.Location()
		tr := transitions(loc, 1900, 2040)
		n := 3000
		if testing.Short() {
			n = 300
		}
		for i := range n {
			var ins time.Time
			switch {
			case len(tr) > 0 && i%2 == 0:
				base := tr[rng.IntN(len(tr))]
				ins = base.Add(time.Duration(rng.Int64N(int64(72*time.Hour))) - 36*time.Hour)
			case i%3 == 0:
				ins = time.Unix(0, rng.Int64()-rng.Int64()/2*2) // whole int64 range
			default:
				ins = time.Unix(rng.Int64N(200*365*secPerDay)-80*365*secPerDay, rng.Int64N(1e9))
			}
			ins = ins.In(loc)
			for _, iv := range Intervals {
				checkWindow(t, c, iv, ins)
			}
		}
	}
}

func checkWindow(t *testing.T, c *Calendar, iv Interval, ins time.Time) {
	t.Helper()
	s, e := c.Window(iv, ins)
	l := label(iv, ins)
	bad := func(what string) {
		t.Fatalf("%s %v at %s: window [%s, %s): %s", c.Location(), iv, ins.Format(time.RFC3339Nano),
			s.Format(time.RFC3339), e.Format(time.RFC3339), what)
	}
	if ins.Before(s) || !ins.Before(e) {
		bad("does not contain instant")
	}
	if label(iv, s) != l || label(iv, e.Add(-time.Nanosecond)) != l {
		bad("label not constant inside")
	}
	if label(iv, s.Add(-time.Nanosecond)) == l || label(iv, e) == l {
		bad("not maximal")
	}
	if s2, e2 := c.Window(iv, s); !s2.Equal(s) || !e2.Equal(e) {
		bad("start maps elsewhere")
	}
	if s3, _ := c.Window(iv, e); !s3.Equal(e) {
		bad("next window does not start at end")
	}
	if ns := ins.UnixNano(); ins.Equal(time.Unix(0, ns)) {
		sn, en := c.WindowNanos(iv, ns)
		if sn != clampNanos(s) || en != clampNanos(e) {
			bad(fmt.Sprintf("WindowNanos [%d, %d) disagrees", sn, en))
		}
	}
}

// TestWindowNanosStream walks time forward like a live stream (exercising the
// caches) and compares each result with the uncached reference.
func TestWindowNanosStream(t *testing.T) {
	for _, zone := range []string{"UTC", "America/New_York", "Australia/Lord_Howe", "America/Havana"} {
		c := mustCal(t, zone)
		ref := mustCal(t, zone)
		ns := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
		step := int64(7*time.Minute + 13*time.Second)
		for ns < time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() {
			for _, iv := range Intervals {
				s, e := c.WindowNanos(iv, ns)
				rs, re := ref.Window(iv, time.Unix(0, ns))
				if s != rs.UnixNano() || e != re.UnixNano() {
					t.Fatalf("%s %v at %s: got [%s,%s) want [%s,%s)", zone, iv, time.Unix(0, ns).UTC(),
						time.Unix(0, s).UTC(), time.Unix(0, e).UTC(), rs.UTC(), re.UTC())
				}
			}
			ns += step
		}
	}
}

// TestWindowNanosConcurrent hammers the seqlock caches from several
// goroutines with interleaved instants; run with -race.
func TestWindowNanosConcurrent(t *testing.T) {
	c := mustCal(t, "Europe/Berlin")
	base := time.Date(2024, 3, 25, 0, 0, 0, 0, time.UTC).UnixNano()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 20000 {
				ns := base + rng.Int64N(int64(400*24*time.Hour))
				iv := Intervals[rng.IntN(len(Intervals))]
				s, e := c.WindowNanos(iv, ns)
				rs, re := c.Window(iv, time.Unix(0, ns))
				if s != rs.UnixNano() || e != re.UnixNano() {
					t.Errorf("%v at %d: got [%d,%d) want [%d,%d)", iv, ns, s, e, rs.UnixNano(), re.UnixNano())
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestFixedWindowMatchesTimePackage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, off := range []int{0, 3600, -5 * 3600, 5*3600 + 1800, 14 * 3600, -12 * 3600, 5*3600 + 45*60} {
		loc := time.FixedZone("F", off)
		c := NewCalendar(loc)
		for range 5000 {
			ns := rng.Int64N(safeNs) - rng.Int64N(safeNs)
			for _, iv := range Intervals {
				s, e := c.WindowNanos(iv, ns)
				rs, re := windowTime(iv, time.Unix(0, ns).In(loc))
				if s != rs.UnixNano() || e != re.UnixNano() {
					t.Fatalf("off %d %v at %d: got [%d,%d) want [%s,%s)", off, iv, ns, s, e, rs, re)
				}
			}
		}
	}
}
