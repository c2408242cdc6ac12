package isodate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRange(t *testing.T) {
	for s, want := range map[string]time.Time{
		"1700-01-01T00:00:00Z":           time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC),
		"1969-12-31T23:59:59Z":           time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		"1970-01-01T00:00:00Z":           time.Unix(0, 0).UTC(),
		"2199-12-31T23:59:59.999999999Z": time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"2018-10-19":                     time.Date(2018, 10, 19, 0, 0, 0, 0, time.UTC),
		"1700-01-01T01:00:00+01:00":      time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := Parse(s)
		require.NoError(t, err, s)
		assert.True(t, want.Equal(got), "%s: %s", s, got)
	}
	for _, s := range []string{
		"0001-01-01T00:00:00Z", "0001-06-01", "1699-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
		"2300-01-01", "9999-12-31T23:59:59Z", "1700-01-01T00:59:59+01:00",
	} {
		_, err := Parse(s)
		assert.ErrorContains(t, err, "out of range", s)
	}
}
