package windowstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/definitions"
)

func TestWindowsReloadFromBackend(t *testing.T) {
	ctx := context.Background()
	backend := &definitions.MemoryBackend{}
	s := New(backend, calendar.UTC())
	series := Series{Tenant: "t", Metric: "7", Key: "app1"}
	at := time.Date(2024, 2, 29, 10, 15, 0, 0, time.UTC)

	st, start, err := s.Add(ctx, series, calendar.Hour, at.UnixNano(), 4, 1)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2024, 2, 29, 10, 0, 0, 0, time.UTC).UnixNano(), start)
	assert.Equal(t, 4.0, st.Value(aggregation.Sum))
	_, _, err = s.Add(ctx, series, calendar.Hour, at.Add(-10*time.Minute).UnixNano(), 10, 1)
	require.NoError(t, err)

	// A new store over the same backend (a restart) continues the same window.
	restarted := New(backend, calendar.UTC())
	st, _, err = restarted.Add(ctx, series, calendar.Hour, at.Add(30*time.Minute).UnixNano(), 1, 1)
	require.NoError(t, err)
	assert.Equal(t, 15.0, st.Value(aggregation.Sum))
	assert.Equal(t, 3.0, st.Value(aggregation.Count))
	assert.Equal(t, 10.0, st.Value(aggregation.First), "first by the values' own time, across the restart")
	assert.Equal(t, 1.0, st.Value(aggregation.Last))

	// Other keys, intervals and windows are separate.
	st, _, err = restarted.Add(ctx, Series{Tenant: "t", Metric: "7", Key: "app2"}, calendar.Hour, at.UnixNano(), 2, 1)
	require.NoError(t, err)
	assert.Equal(t, 2.0, st.Value(aggregation.Sum))
	st, _, err = restarted.Add(ctx, series, calendar.Day, at.UnixNano(), 2, 1)
	require.NoError(t, err)
	assert.Equal(t, 2.0, st.Value(aggregation.Sum))
}
