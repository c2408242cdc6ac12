package figures

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/calendar"
)

func TestSlot(t *testing.T) {
	assert.Nil(t, FromContext(context.Background()), "nobody asked: no slot, nothing recorded")

	ctx, s := NewContext(context.Background())
	require.Same(t, s, FromContext(ctx))
	_, ok := s.Find("m", calendar.Hour)
	assert.False(t, ok, "an empty slot: the receiver keeps the aggregate itself")

	s.Put(Figure{Metric: "m", Interval: calendar.Hour, Start: 1})
	s.Put(Figure{Metric: "m", Interval: calendar.Day, Start: 2})
	s.Put(Figure{Metric: "other", Interval: calendar.Hour, Start: 3})
	s.Put(Figure{Metric: "m", Interval: calendar.Hour, Start: 4})
	f, ok := s.Find("m", calendar.Hour)
	require.True(t, ok)
	assert.EqualValues(t, 4, f.Start, "the latest state of the window wins")
	f, ok = s.Find("m", calendar.Day)
	require.True(t, ok)
	assert.EqualValues(t, 2, f.Start)
	_, ok = s.Find("m", calendar.Week)
	assert.False(t, ok)
}
