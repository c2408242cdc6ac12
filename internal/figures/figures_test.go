package figures

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/calendar"
)

func TestSlot(t *testing.T) {
	assert.Nil(t, FromContext(context.Background()), "nobody asked: no slot, nothing recorded")

	ctx, s := NewContext(context.Background())
	require.Same(t, s, FromContext(ctx))
	assert.False(t, s.Probe(), "a request's slot is no probe")
	_, ok := s.Find("m", calendar.Hour)
	assert.False(t, ok, "nothing recorded yet")

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

// answering is what a component that fills slots does with a probe.
func answering(next consumer.Metrics) consumer.Metrics {
	c, _ := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		if s := FromContext(ctx); s != nil && s.Probe() {
			s.Answer()
			return nil
		}
		return next.ConsumeMetrics(ctx, md)
	})
	return c
}

func TestProbe(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	answered, err := Probe(context.Background(), sink)
	require.NoError(t, err)
	assert.False(t, answered, "nobody fills slots")
	require.Len(t, sink.AllMetrics(), 1)
	assert.Zero(t, sink.AllMetrics()[0].DataPointCount(), "the probe is an empty batch")

	sink.Reset()
	answered, err = Probe(context.Background(), answering(sink))
	require.NoError(t, err)
	assert.True(t, answered)
	assert.Empty(t, sink.AllMetrics(), "an answered probe goes no further")

	refused := errors.New("refused")
	answered, err = Probe(context.Background(), consumertest.NewErr(refused))
	assert.ErrorIs(t, err, refused)
	assert.False(t, answered)

	// Asynchronous: the answer comes after ConsumeMetrics returned, with the
	// same slot, and does not count.
	var late *Slot
	done := make(chan struct{})
	async, _ := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		late = FromContext(ctx)
		go func() {
			<-done
			_ = answering(consumertest.NewNop()).ConsumeMetrics(ctx, md)
			close(done)
		}()
		return nil
	})
	answered, err = Probe(context.Background(), async)
	require.NoError(t, err)
	assert.False(t, answered)
	done <- struct{}{}
	<-done
	late.mu.Lock()
	defer late.mu.Unlock()
	assert.False(t, late.answered, "an answer after Probe returned is ignored")
}
