package anomalyprocessor

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// The tenant id lives in the padding of series; the chunks of seriesChunk
// series fill the allocator's 32 KiB size class.
func TestSeriesSize(t *testing.T) {
	assert.EqualValues(t, 984, unsafe.Sizeof(series{}))
	assert.EqualValues(t, 32472, seriesChunk*unsafe.Sizeof(series{}))
}

// roundOf is one point of each of n series of tenant at minute i.
func roundOf(tenant string, n, i int) []point {
	pts := make([]point, n)
	for j := range pts {
		pts[j] = point{metric: "m", tenant: tenant, attrs: map[string]any{"k": fmt.Sprint(j)}, ts: t0.Add(time.Duration(i) * time.Minute), v: 1}
	}
	return pts
}

func scoredOf(tp *testProc, tenant string) int {
	n := 0
	for _, md := range tp.sink.AllMetrics() {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			var got string
			if v, ok := rm.Resource().Attributes().Get(otelmap.AttrTenant); ok {
				got = v.AsString()
			}
			if got != tenant {
				continue
			}
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for l := 0; l < ms.Len(); l++ {
					if ms.At(l).Name() == "m"+scoreSuffix {
						n += ms.At(l).Gauge().DataPoints().Len()
					}
				}
			}
		}
	}
	return n
}

// One tenant's series do not exhaust the others': tenant A at its quota gets
// no new series, tenant B (and the default tenant) still do.
func TestMaxSeriesPerTenant(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	cfg.MaxSeries = 100
	cfg.MaxSeriesPerTenant = 3
	cfg.SeriesTTL = time.Hour
	cfg.SnapshotInterval = time.Hour // maintenance is driven by the test
	tp := newTestProc(t, cfg, nil)
	clock := t0
	tp.p.now = func() time.Time { return clock }

	for i := range 2 {
		tp.consume(t, roundOf("A", 5, i)...)
		tp.consume(t, roundOf("B", 3, i)...)
		tp.consume(t, roundOf("", 3, i)...)
	}
	assert.Equal(t, 6, scoredOf(tp, "A"), "three of A's five series are scored")
	assert.Equal(t, 6, scoredOf(tp, "B"), "B keeps getting new series")
	assert.Equal(t, 6, scoredOf(tp, ""), "so does the default tenant")
	assert.EqualValues(t, 4, tp.counterWith(t, "points_unscored", "reason", "max_series_per_tenant"))
	assert.Zero(t, tp.counterWith(t, "points_unscored", "reason", "max_series"))
	assert.EqualValues(t, 9, tp.counter(t, "series"))
	assert.Equal(t, 3, tp.p.tenants.count("A"))

	// Once A's series are evicted, A gets new series again.
	clock = clock.Add(2 * time.Hour)
	tp.p.maintain(context.Background())
	assert.Zero(t, tp.p.tenants.count("A"))
	tp.consume(t, roundOf("A", 5, 200)[3:]...)
	assert.Equal(t, 8, scoredOf(tp, "A"))
}

// The tenant of a series is stored with its state: after a restart A is still
// at its quota. States stored without a tenant (version 1) count for their
// tenant from their next point on.
func TestTenantSurvivesRestart(t *testing.T) {
	st := newMemStorage(true)
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	cfg.MaxSeriesPerTenant = 2
	cfg.SnapshotInterval = time.Hour
	id := memStorageID
	cfg.Storage = &id
	first := newTestProc(t, cfg, hostWith(st))
	first.consume(t, roundOf("A", 2, 0)...)
	first.p.maintain(context.Background())
	require.Len(t, st.keys(), 2)

	// A version-1 state of a third series of A (as stored before tenants).
	var s series
	s.seen = time.Now().UnixNano()
	v1 := s.appendBinary(nil, "")
	v1 = append(append([]byte{seriesMagic, 1}, v1[2:seriesHeader]...), v1[seriesHeader+1+lastSize:]...) // drop the tenant and the last result
	_, known, err := new(series).unmarshalWithTenant(v1)
	require.NoError(t, err)
	require.False(t, known)
	first.consume(t, roundOf("A", 3, 1)[2:]...) // find the third series' key: refused, so no state
	assert.EqualValues(t, 1, first.counterWith(t, "points_unscored", "reason", "max_series_per_tenant"))
	r, a := pcommon.NewMap(), pcommon.NewMap()
	require.NoError(t, r.FromRaw(map[string]any{"host": "", otelmap.AttrTenant: "A"}))
	require.NoError(t, a.FromRaw(map[string]any{"k": "2"}))
	k := pointKey(metricKey(hashMap(0, r, false), "m"), hashMap(0, a, true))
	st.Mu.Lock()
	st.Data[storageKey(k)] = v1
	st.Mu.Unlock()
	require.NoError(t, first.Shutdown(context.Background()))

	second := newTestProc(t, cfg, hostWith(st))
	assert.Equal(t, 2, second.p.tenants.count("A"), "the two stored states of A count; the version-1 one not yet")
	second.consume(t, roundOf("A", 3, 2)...)
	assert.Equal(t, 3, scoredOf(second, "A"), "A's stored series, the version-1 one included, are scored")
	assert.Equal(t, 3, second.p.tenants.count("A"), "the version-1 state now counts for A")
	second.consume(t, point{metric: "m", tenant: "A", attrs: map[string]any{"k": "new"}, ts: t0.Add(3 * time.Minute), v: 1})
	assert.EqualValues(t, 1, second.counterWith(t, "points_unscored", "reason", "max_series_per_tenant"))

	second.p.maintain(context.Background())
	tenant, known, err := new(series).unmarshalWithTenant(st.get(storageKey(k)))
	require.NoError(t, err)
	assert.True(t, known)
	assert.Equal(t, "A", tenant, "the state is stored again with its tenant")
}

// TestRunningFiguresAreNotScored: the aggregate processor's running figures
// of an open window pass through unscored; its closing figure (same
// timestamp) is the one value of the window the detector sees.
func TestRunningFiguresAreNotScored(t *testing.T) {
	tp := newTestProc(t, createDefaultConfig().(*Config), nil)
	withKind := func(kind string, v float64) pmetric.Metrics {
		md := batch(point{metric: "m", ts: t0, v: v})
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Metadata().PutStr(otelmap.MetaWindow, kind)
		return md
	}
	require.NoError(t, tp.ConsumeMetrics(context.Background(), withKind(otelmap.WindowRunning, 1)))
	require.NoError(t, tp.ConsumeMetrics(context.Background(), withKind(otelmap.WindowRunning, 2)))
	assert.Equal(t, 0, seriesCount(tp.p), "no series learned from running figures")
	require.NoError(t, tp.ConsumeMetrics(context.Background(), withKind(otelmap.WindowClosed, 3)))
	assert.Equal(t, 1, seriesCount(tp.p), "the closing figure is learned")
	assert.Len(t, tp.points("m"), 3, "every figure passes on")
}

func seriesCount(p *anomalyProcessor) int {
	n := 0
	for i := range p.shards {
		p.shards[i].mu.Lock()
		n += len(p.shards[i].m)
		p.shards[i].mu.Unlock()
	}
	return n
}
