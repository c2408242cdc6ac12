package embrace

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/calendar"
)

func TestWindow(t *testing.T) {
	// The document's time granularities, literally ("five_minute, hourly, daily").
	for _, tc := range []struct {
		granularity string
		iv          calendar.Interval
	}{
		{"five_minute", calendar.FiveMinutes}, {"hourly", calendar.Hour}, {"daily", calendar.Day},
	} {
		iv, ok := Window(tc.granularity)
		assert.True(t, ok, tc.granularity)
		assert.Equal(t, tc.iv, iv, tc.granularity)
	}
	assert.Len(t, windows, len(Granularities))
	// The API spells them exactly so; the bundle's own names are not granularities.
	for _, bad := range []string{"", "5m", "hour", "day", "Hourly", "DAILY", "five_minutes", "weekly", " hourly"} {
		_, ok := Window(bad)
		assert.False(t, ok, bad)
	}
}

func TestWindows(t *testing.T) {
	for _, tc := range []struct {
		grans []string
		want  []calendar.Interval
	}{
		{nil, []calendar.Interval{calendar.Hour}}, // "If it is empty, by default hourly is turned on"
		{[]string{"five_minute", "hourly"}, []calendar.Interval{calendar.FiveMinutes, calendar.Hour}},
		{[]string{"daily", "five_minute", "daily"}, []calendar.Interval{calendar.Day, calendar.FiveMinutes}},
	} {
		got, err := CustomMetric{TimeGranularity: tc.grans}.Windows()
		require.NoError(t, err, tc.grans)
		assert.Equal(t, tc.want, got, tc.grans)
	}
	_, err := CustomMetric{TimeGranularity: []string{"hourly", "weekly"}}.Windows()
	assert.EqualError(t, err, `time_granularity: "weekly" is not one of five_minute, hourly, daily`)
}

func TestParseCreateGranularities(t *testing.T) {
	bases := DocumentedBaseMetrics
	// The document's create example.
	m, err := ParseCreate([]byte(`{"name": "sessions_total_v1", "metric": "sessions_total", "group_by": ["app_version"],
		"filters": {"op": "and", "children": [{"field_op": "eq", "key": "os_version", "val": "12"}]},
		"time_granularity": ["five_minute", "hourly"]}`), "app", bases)
	require.NoError(t, err)
	assert.Equal(t, []string{"five_minute", "hourly"}, m.TimeGranularity, "stored as sent")
	ivs, err := m.Windows()
	require.NoError(t, err)
	assert.Equal(t, []calendar.Interval{calendar.FiveMinutes, calendar.Hour}, ivs)

	m, err = ParseCreate([]byte(`{"name": "n", "metric": "sessions_total"}`), "app", bases)
	require.NoError(t, err)
	assert.Equal(t, []string{"hourly"}, m.TimeGranularity)

	for _, bad := range []string{`["hour"]`, `["Hourly"]`, `["5m"]`, `["daily","daily"]`} {
		_, err := ParseCreate([]byte(`{"name": "n", "metric": "sessions_total", "time_granularity": `+bad+`}`), "app", bases)
		assert.ErrorContains(t, err, "time_granularity", bad)
	}
}
