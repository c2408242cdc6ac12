package aggregateprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

func TestConfigUnmarshalAndValidate(t *testing.T) {
	cfg := defaultCfg()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"time_zone":             "America/New_York",
		"allowed_lateness":      "1m",
		"storage":               "file_storage",
		"commit_delay":          "2ms",
		"restatement_retention": "8760h",
		"rules": []any{
			map[string]any{"regexp": `http\..*`, "aggregation": "Average", "intervals": []any{"hour", "day"}, "attributes": []any{"method"}},
			map[string]any{"name": "jobs", "aggregation": "count", "intervals": []any{"5m"}},
		},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	assert.Equal(t, time.Minute, cfg.AllowedLateness)
	assert.Equal(t, "file_storage", cfg.Storage.String())
	assert.Equal(t, 2*time.Millisecond, cfg.CommitDelay)
	assert.Equal(t, aggregation.Average, cfg.Rules[0].Aggregation)
	assert.Equal(t, []calendar.Interval{calendar.Hour, calendar.Day}, cfg.Rules[0].Intervals)
	assert.Nil(t, cfg.Rules[1].Attributes)
	assert.Equal(t, 1_000_000, cfg.MaxSeriesWindows)

	bad := defaultCfg()
	bad.TimeZone = "Mars/Olympus"
	bad.MaxSeriesWindows = 0
	bad.CommitDelay = -time.Millisecond
	bad.Rules = []Rule{{Name: "a", Regexp: "b"}, {Regexp: "("}}
	err := bad.Validate()
	require.Error(t, err)
	for _, want := range []string{"time_zone", "max_series_windows", "commit_delay", "mutually exclusive", "aggregation is required", "intervals", "regexp"} {
		assert.Contains(t, err.Error(), want)
	}
}
