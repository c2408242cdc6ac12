package aggregateprocessor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
	"github.com/custommetrics/bundle/processor/aggregateprocessor/internal/metadatatest"
)

func sumBatch(name string, ts time.Time, keys ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(otelmap.AttrAPI, "test")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	m.Metadata().PutStr(otelmap.MetaAggregation, "sum")
	m.Metadata().PutStr(otelmap.MetaInterval, "hour")
	dps := m.SetEmptySum().DataPoints()
	for _, k := range keys {
		dp := dps.AppendEmpty()
		dp.SetDoubleValue(1)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.Attributes().PutStr(otelmap.AttrKey, k)
	}
	return md
}

// TestLimitRefusesWholeBatchRetryably: past max_series_windows a batch with
// new series-windows is refused with a non-permanent error and changes nothing.
func TestLimitRefusesWholeBatchRetryably(t *testing.T) {
	ctx := context.Background()
	cfg := defaultCfg()
	cfg.MaxSeriesWindows = 3
	sink := new(consumertest.MetricsSink)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: at}
	p := newTestProcessor(t, cfg, sink, clk, nil)
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a", "b")))
	// Existing series "a" plus two new ones: one too many, all refused.
	err := p.ConsumeMetrics(ctx, sumBatch("m", at, "a", "c", "d"))
	require.ErrorIs(t, err, windows.ErrLimit)
	assert.False(t, consumererror.IsPermanent(err), "the receiver must answer 503, not 400")
	assert.EqualValues(t, 2, p.windows.Len())
	// Existing series still take values; one new fits.
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a", "c")))
	clk.set(at.Add(2 * time.Hour))
	require.NoError(t, p.tick(ctx, clk.now()))
	got := map[string]float64{}
	for _, r := range rows(sink.AllMetrics()...) {
		got[r.attrs] = r.value
	}
	assert.Equal(t, map[string]float64{
		"custommetrics.api=test;|custommetrics.key=a;|": 2, // not 3: the refused batch left no trace
		"custommetrics.api=test;|custommetrics.key=b;|": 1,
		"custommetrics.api=test;|custommetrics.key=c;|": 1,
	}, got)
}

// TestRetentionRefusesPermanently: a value for a window older than
// restatement_retention is refused with a permanent error.
func TestRetentionRefusesPermanently(t *testing.T) {
	cfg := defaultCfg()
	cfg.RestatementRetention = 24 * time.Hour
	now := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, cfg, new(consumertest.MetricsSink), &clock{t: now}, newMemStorage())
	err := p.ConsumeMetrics(context.Background(), sumBatch("m", now.Add(-72*time.Hour), "a"))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err))
	assert.Contains(t, err.Error(), "restatement_retention")
	require.NoError(t, p.ConsumeMetrics(context.Background(), sumBatch("m", now.Add(-2*time.Hour), "a")))
}

// TestAcknowledgedIsDurableWithoutShutdown: once ConsumeMetrics returned nil
// the value is in storage; a processor started on that storage (after a
// "kill -9" of the first: no Shutdown) counts it.
func TestAcknowledgedIsDurableWithoutShutdown(t *testing.T) {
	ctx := context.Background()
	store := newMemStorage()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: at}
	p1 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), clk, store)
	require.NoError(t, p1.ConsumeMetrics(ctx, sumBatch("m", at, "a", "a")))
	snapshot := newMemStorage()
	store.Mu.Lock()
	for k, v := range store.Data { // what is on disk right now
		snapshot.Data[k] = v
	}
	store.Mu.Unlock()

	sink := new(consumertest.MetricsSink)
	p2 := newTestProcessor(t, defaultCfg(), sink, clk, snapshot)
	require.NoError(t, p2.ConsumeMetrics(ctx, sumBatch("m", at.Add(time.Minute), "a")))
	clk.set(at.Add(2 * time.Hour))
	require.NoError(t, p2.tick(ctx, clk.now()))
	r := rows(sink.AllMetrics()...)
	require.Len(t, r, 1)
	assert.Equal(t, 3.0, r[0].value)
}

// TestUpgradeRestatesSameWindow: after an upgrade the receiver stamps a new
// scope version; a late value for a closed window must restate that window
// (complete figure), not open a second one whose partial figure would
// overwrite the stored one downstream.
func TestUpgradeRestatesSameWindow(t *testing.T) {
	ctx := context.Background()
	store := newMemStorage()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	withVersion := func(md pmetric.Metrics, v string) pmetric.Metrics {
		sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
		sm.Scope().SetName(otelmap.ScopeName)
		sm.Scope().SetVersion(v)
		return md
	}
	clk := &clock{t: at}
	p1 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), clk, store)
	require.NoError(t, p1.ConsumeMetrics(ctx, withVersion(sumBatch("m", at, "a", "a"), "1.0.0")))
	clk.set(at.Add(2 * time.Hour))
	require.NoError(t, p1.tick(ctx, clk.now()))

	sink := new(consumertest.MetricsSink)
	p2 := newTestProcessor(t, defaultCfg(), sink, clk, store)
	require.NoError(t, p2.ConsumeMetrics(ctx, withVersion(sumBatch("m", at.Add(time.Minute), "a"), "1.1.0")))
	require.NoError(t, p2.tick(ctx, clk.now()))
	r := rows(sink.AllMetrics()...)
	require.Len(t, r, 1)
	assert.Equal(t, 3.0, r[0].value, "the restatement carries both versions' values")
}

// TestGroupCommit: concurrent ConsumeMetrics calls share storage batches.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	store := newMemStorage()
	// Storage that takes as long as a sync: callers pile up while a round
	// writes, whatever the scheduler does (instant storage let a loaded
	// machine run the calls one after the other).
	store.Latency = time.Millisecond
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
	const callers, calls = 32, 50
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				assert.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, string(rune('a'+c%26)))))
			}
		}()
	}
	wg.Wait()
	store.Mu.Lock()
	batches := store.Batches
	store.Mu.Unlock()
	t.Logf("%d ConsumeMetrics calls, %d storage batches", callers*calls, batches)
	assert.Less(t, batches, callers*calls, "calls share commits")
	var total float64
	p.windows.Each(func(w windows.Window) {
		total += w.State.Value(w.Desc.Fn)
	})
	assert.Equal(t, float64(callers*calls), total)
}

// TestStorageFailureIsReported: a failed commit is a retryable error and
// leaves no trace: the refused value is counted neither in memory nor in
// storage, not even after the next successful commit.
func TestStorageFailureIsReported(t *testing.T) {
	ctx := context.Background()
	store := newMemStorage()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
	store.Mu.Lock()
	store.Fail = errors.New("disk full")
	store.Mu.Unlock()
	err := p.ConsumeMetrics(ctx, sumBatch("m", at, "a"))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "retryable: nothing was counted")
	assert.NotContains(t, err.Error(), "disk full", "the cause is logged, not told to clients")
	store.Mu.Lock()
	store.Fail = nil
	store.Mu.Unlock()
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")))
	p.windows.Each(func(w windows.Window) {
		assert.Equal(t, 1.0, w.State.Value(w.Desc.Fn), "in memory: only the acknowledged value")
	})
	p2 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
	require.EqualValues(t, 1, p2.windows.Len())
	p2.windows.Each(func(w windows.Window) {
		assert.Equal(t, 1.0, w.State.Value(w.Desc.Fn), "in storage: only the acknowledged value")
	})
}

// TestRunningEmissions: running_interval emits open windows as running figures.
func TestRunningEmissions(t *testing.T) {
	ctx := context.Background()
	cfg := defaultCfg()
	cfg.RunningInterval = time.Minute
	sink := new(consumertest.MetricsSink)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: at}
	p := newTestProcessor(t, cfg, sink, clk, nil)
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")))
	require.NoError(t, p.tick(ctx, at.Add(time.Minute)))
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")))
	require.NoError(t, p.tick(ctx, at.Add(90*time.Second))) // not due
	require.NoError(t, p.tick(ctx, at.Add(2*time.Minute)))
	var vals []float64
	for _, r := range rows(sink.AllMetrics()...) {
		vals = append(vals, r.value)
		assert.Equal(t, at, r.start.UTC())
		assert.Equal(t, at.Add(time.Hour), r.end.UTC())
	}
	assert.Equal(t, []float64{1, 2}, vals)
}

// TestInvalidPointsIgnored: NaN values and negative weights are ignored and counted.
func TestInvalidPointsIgnored(t *testing.T) {
	ctx := context.Background()
	sink := new(consumertest.MetricsSink)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), sink, &clock{t: at.Add(3 * time.Hour)}, nil)
	md := sumBatch("m", at, "a", "a", "a")
	dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints()
	dps.At(1).SetDoubleValue(nanValue())
	dps.At(2).Attributes().PutDouble(otelmap.AttrWeight, -1)
	require.NoError(t, p.ConsumeMetrics(ctx, md))
	require.NoError(t, p.tick(ctx, at.Add(3*time.Hour)))
	r := rows(sink.AllMetrics()...)
	require.Len(t, r, 1)
	assert.Equal(t, 1.0, r[0].value)
}

// TestPinsBalanced: every call unpins what it pinned, with or without a
// figures slot (which keeps windows pinned until it is filled), with or
// without storage, accepted or refused: a window left pinned is never
// evicted, one unpinned too early may be evicted and its slot reused.
func TestPinsBalanced(t *testing.T) {
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, durable := range []bool{false, true} {
		for _, withFigures := range []bool{false, true} {
			t.Run(fmt.Sprintf("durable=%v/figures=%v", durable, withFigures), func(t *testing.T) {
				var client storage.Client
				if durable {
					client = newMemStorage()
				}
				p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, client)
				ctx := context.Background()
				var slot *figures.Slot
				if withFigures {
					ctx, slot = figures.NewContext(ctx)
				}
				require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a", "b")))
				require.Error(t, p.ConsumeMetrics(ctx, valueBatch("m", "sum", at, 1, "a", math.MaxFloat64, math.MaxFloat64)), "non-finite: refused")
				require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("m", "sum", at, 1, "a", 2)))
				if withFigures {
					_, ok := slot.Find("m", calendar.Hour)
					assert.True(t, ok)
				}
				n := 0
				p.windows.Each(func(w windows.Window) {
					n++
					assert.Zero(t, w.Pins)
				})
				assert.Positive(t, n)
			})
		}
	}
}

// TestPointsAggregatedCountsWindows: points_aggregated counts a point once
// per window it is added to (one per interval), as documented.
func TestPointsAggregatedCountsWindows(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	cfg := defaultCfg()
	cfg.Rules = []Rule{{Name: "m", Aggregation: aggregation.Sum, Intervals: []calendar.Interval{calendar.Hour, calendar.Day}}}
	p, err := newProcessor(metadatatest.NewSettings(tt), cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p.now = (&clock{t: at}).now
	md := sumBatch("m", at, "a", "b", "c")
	md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Metadata().Clear() // the rule applies
	require.NoError(t, p.ConsumeMetrics(context.Background(), md))
	metadatatest.AssertEqualProcessorAggregatePointsAggregated(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 6}}, metricdatatest.IgnoreTimestamp())
}

// TestEmissionRoundsPerSeries: when a series has several windows to close at
// once, each emission carries one of them (with the other series' windows in
// the first), in order; a failed emission leaves it and the later ones due,
// so that what is emitted again is the series' last scored window.
func TestEmissionRoundsPerSeries(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	var batches [][]row
	calls := 0
	next, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		calls++
		if calls == 1 || calls == 3 {
			return errors.New("exporter down")
		}
		batches = append(batches, rows(md))
		return nil
	})
	require.NoError(t, err)
	now := at.Add(10 * time.Hour)
	p := newTestProcessor(t, defaultCfg(), next, &clock{t: now}, nil)
	for h := range 3 {
		require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at.Add(time.Duration(h)*time.Hour), "a")))
	}
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "b")))

	require.Error(t, p.tick(ctx, now)) // the first round fails
	require.Error(t, p.tick(ctx, now)) // the first goes out, the second fails
	require.NoError(t, p.tick(ctx, now))
	require.NoError(t, p.tick(ctx, now)) // nothing left

	var got [][]string
	for _, b := range batches {
		var ws []string
		for _, r := range b {
			_, key, _ := strings.Cut(r.attrs, "custommetrics.key=")
			ws = append(ws, fmt.Sprintf("%s@%d", key[:1], r.start.Sub(at)/time.Hour))
		}
		got = append(got, ws)
	}
	assert.Equal(t, [][]string{{"a@0", "b@0"}, {"a@1"}, {"a@2"}}, got)
}
