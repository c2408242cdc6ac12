package aggregateprocessor

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
)

// valueBatch is one metric of aggregation fn (hour windows) with the given
// values at ts, each with weight w (0: no weight attribute) and key.
func valueBatch(name, fn string, ts time.Time, w float64, key string, values ...float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	m.Metadata().PutStr(otelmap.MetaAggregation, fn)
	m.Metadata().PutStr(otelmap.MetaInterval, "hour")
	dps := m.SetEmptyGauge().DataPoints()
	for _, v := range values {
		dp := dps.AppendEmpty()
		dp.SetDoubleValue(v)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		if key != "" {
			dp.Attributes().PutStr(otelmap.AttrKey, key)
		}
		if w != 0 {
			dp.Attributes().PutDouble(otelmap.AttrWeight, w)
		}
	}
	return md
}

// figureOf returns the committed figure of the single window of metric name.
func figureOf(t *testing.T, p *aggProcessor, name, key string) float64 {
	t.Helper()
	var got []float64
	p.windows.Each(func(w windows.Window) {
		akey := string(w.Attrs)
		if w.Desc.Name == name && (key == "" || akey != "" && akey[len(akey)-len(key):] == key) {
			got = append(got, w.State.Value(w.Desc.Fn))
		}
	})
	require.Len(t, got, 1)
	return got[0]
}

// TestNonFiniteFigureIsRefused: a value that would make its window's figure
// non-finite is refused (permanent: the same value is refused again), and
// the window keeps its last finite figure, in memory and in storage.
func TestNonFiniteFigureIsRefused(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, durable := range []bool{false, true} {
		var store *memStorage
		if durable {
			store = newMemStorage()
		}
		var p *aggProcessor
		if durable {
			p = newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
		} else {
			p = newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, nil)
		}
		require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "", 1e308)))
		err := p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "", 1e308))
		require.ErrorIs(t, err, windows.ErrNonFinite)
		assert.True(t, consumererror.IsPermanent(err))
		assert.Equal(t, 1e308, figureOf(t, p, "s", ""))
		require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "", -1e308)))
		assert.Equal(t, 0.0, figureOf(t, p, "s", ""))

		// Average: sum(v*w) overflowing is refused too.
		require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("a", "average", at, 1, "", 1e308)))
		require.ErrorIs(t, p.ConsumeMetrics(ctx, valueBatch("a", "average", at, 1, "", 1e308)), windows.ErrNonFinite)
		assert.Equal(t, 1e308, figureOf(t, p, "a", ""))

		if durable {
			p2 := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
			assert.Equal(t, 0.0, figureOf(t, p2, "s", ""), "storage holds the last finite figure")
			assert.Equal(t, 1e308, figureOf(t, p2, "a", ""))
		}
	}
}

// TestRefusedBatchChangesNoWindow: a batch whose last point overflows one
// window leaves every other window it touched as it was (all or nothing).
func TestRefusedBatchChangesNoWindow(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, newMemStorage())
	require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "big", 1e308)))
	require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "small", 1)))
	md := valueBatch("s", "sum", at, 0, "small", 5, 6)
	other := valueBatch("s", "sum", at, 0, "big", 1e308)
	other.ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	require.ErrorIs(t, p.ConsumeMetrics(ctx, md), windows.ErrNonFinite)
	assert.Equal(t, 1.0, figureOf(t, p, "s", "small"))
	assert.Equal(t, 1e308, figureOf(t, p, "s", "big"))
	require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("s", "sum", at, 0, "small", 2)))
	assert.Equal(t, 3.0, figureOf(t, p, "s", "small"))
}

// TestWeightZero: a weight of 0 is a value that adds nothing to an Average;
// where the window would be left without a figure (every weight 0) it is
// refused, like any value that would make a figure non-finite.
func TestWeightZero(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, newMemStorage())
	zero := func(v float64) pmetric.Metrics {
		md := valueBatch("a", "average", at, 1, "", v)
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutDouble(otelmap.AttrWeight, 0)
		return md
	}
	require.ErrorIs(t, p.ConsumeMetrics(ctx, zero(5)), windows.ErrNonFinite, "an empty window would have no figure")
	require.NoError(t, p.ConsumeMetrics(ctx, valueBatch("a", "average", at, 2, "", 4)))
	require.NoError(t, p.ConsumeMetrics(ctx, zero(1000)))
	assert.Equal(t, 4.0, figureOf(t, p, "a", ""))
	assert.False(t, math.IsNaN(figureOf(t, p, "a", "")))
}

// statusHost records the component status events reported to it.
type statusHost struct {
	component.Host
	mu     sync.Mutex
	events []componentstatus.Status
}

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	h.events = append(h.events, ev.Status())
	h.mu.Unlock()
}

func (h *statusHost) statuses() []componentstatus.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]componentstatus.Status(nil), h.events...)
}

// TestStorageFailureReachesComponentStatus: a failing store is reported as a
// recoverable error once, and recovery as OK once writes succeed again;
// values are refused in between and taken again after, by themselves.
func TestStorageFailureReachesComponentStatus(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	store := newMemStorage()
	p := newTestProcessor(t, defaultCfg(), new(consumertest.MetricsSink), &clock{t: at}, store)
	host := &statusHost{}
	p.health.host = host
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")))
	store.Mu.Lock()
	store.Fail = errors.New("write /data/storage/x: no space left on device")
	store.Mu.Unlock()
	for range 3 {
		require.ErrorIs(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")), windows.ErrStorage)
	}
	store.Mu.Lock()
	store.Fail = nil
	store.Mu.Unlock()
	require.NoError(t, p.ConsumeMetrics(ctx, sumBatch("m", at, "a")))
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError}, host.statuses(),
		"recovery is reported once commits succeed for a while (no flapping)")
	assert.Eventually(t, func() bool { return len(host.statuses()) == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []componentstatus.Status{componentstatus.StatusRecoverableError, componentstatus.StatusOK}, host.statuses())
	assert.Equal(t, 2.0, figureOf(t, p, "m", ""))
}

// TestTenantQuota: one tenant at max_series_windows_per_tenant is refused
// (retryably) for new series-windows while another tenant still opens its
// own, and its existing windows keep taking values.
func TestTenantQuota(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	cfg := defaultCfg()
	cfg.MaxSeriesWindowsPerTenant = 3
	p := newTestProcessor(t, cfg, new(consumertest.MetricsSink), &clock{t: at}, newMemStorage())
	of := func(tenant string, keys ...string) pmetric.Metrics {
		md := sumBatch("m", at, keys...)
		if tenant != "" {
			md.ResourceMetrics().At(0).Resource().Attributes().PutStr(otelmap.AttrTenant, tenant)
		}
		return md
	}
	require.NoError(t, p.ConsumeMetrics(ctx, of("a", "1", "2", "3")))
	err := p.ConsumeMetrics(ctx, of("a", "4"))
	require.ErrorIs(t, err, windows.ErrTenantLimit)
	assert.False(t, consumererror.IsPermanent(err))
	assert.Contains(t, err.Error(), `tenant "a"`)
	require.NoError(t, p.ConsumeMetrics(ctx, of("a", "1")), "existing series-windows still count")
	require.NoError(t, p.ConsumeMetrics(ctx, of("b", "1", "2", "3")), "another tenant is unaffected")
	require.NoError(t, p.ConsumeMetrics(ctx, of("", "1")), "and so is the default tenant")
	require.ErrorIs(t, p.ConsumeMetrics(ctx, of("b", "x", "y")), windows.ErrTenantLimit, "a batch over the quota is refused whole")
	assert.EqualValues(t, 7, p.windows.Len())
}
