package anomalyprocessor

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
)

const benchSeries = 1000

// benchBatch is one point for each of benchSeries series: a resource with
// three attributes, one gauge, points with three attributes each.
func benchBatch() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("host.name", "host-0042.example.internal")
	rm.Resource().Attributes().PutStr("custommetrics.api", "threatconnect")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("http.server.request.duration")
	pts := m.SetEmptyGauge().DataPoints()
	for i := 0; i < benchSeries; i++ {
		dp := pts.AppendEmpty()
		dp.Attributes().PutStr("http.route", "/api/v2/customMetrics/"+strconv.Itoa(i))
		dp.Attributes().PutStr("http.request.method", "POST")
		dp.Attributes().PutInt("http.response.status_code", 200)
		dp.SetDoubleValue(100)
	}
	return md
}

// stamp sets the timestamp and a noisy value of every point.
func stamp(md pmetric.Metrics, ts time.Time, r *rand.Rand) {
	pts := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints()
	t := pcommon.NewTimestampFromTime(ts)
	for i := 0; i < pts.Len(); i++ {
		pts.At(i).SetTimestamp(t)
		pts.At(i).SetDoubleValue(100 + r.NormFloat64())
	}
}

// inputs are batches with noisy values that are reused (only their
// timestamps are set: SetDoubleValue allocates in pdata).
func inputs(r *rand.Rand) []pmetric.Metrics {
	var mds []pmetric.Metrics
	for i := 0; i < 16; i++ {
		md := benchBatch()
		stamp(md, t0, r)
		mds = append(mds, md)
	}
	return mds
}

func restamp(md pmetric.Metrics, ts time.Time) {
	pts := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints()
	t := pcommon.NewTimestampFromTime(ts)
	for i := 0; i < pts.Len(); i++ {
		pts.At(i).SetTimestamp(t)
	}
}

func newBenchProc(tb testing.TB, cfg *Config) (*anomalyProcessor, processor.Metrics) {
	p, err := newProcessor(nopSettings(), cfg)
	require.NoError(tb, err)
	pm, err := wrap(context.Background(), nopSettings(), cfg, consumertest.NewNop(), p)
	require.NoError(tb, err)
	return p, pm
}

// warm runs the series past their learning period.
func warm(tb testing.TB, pm processor.Metrics, md pmetric.Metrics, r *rand.Rand, n int) time.Time {
	ts := t0
	for i := 0; i < n; i++ {
		ts = ts.Add(time.Minute)
		stamp(md, ts, r)
		in := pmetric.NewMetrics()
		md.CopyTo(in)
		require.NoError(tb, pm.ConsumeMetrics(context.Background(), in))
	}
	return ts
}

// BenchmarkConsumeMetrics: per-point cost through ConsumeMetrics (the
// processorhelper wrapper included) in steady state, 1000 series per batch.
//
//	score-only: scoring alone (outputs disabled white-box), the input reused
//	metrics:    the default output (score and flag gauges)
//	attributes: anomaly.* attributes on the points
func BenchmarkConsumeMetrics(b *testing.B) {
	for _, mode := range []string{"score-only", "metrics", "attributes"} {
		b.Run(mode, func(b *testing.B) {
			cfg := defaultCfg()
			cfg.Attributes = mode == "attributes"
			cfg.Metrics = mode == "metrics"
			if mode == "score-only" {
				cfg.Metrics = true // Validate; disabled below
			}
			p, pm := newBenchProc(b, cfg)
			r := rand.New(rand.NewPCG(1, 2))
			md := benchBatch()
			ts := warm(b, pm, md, r, 320)
			if mode == "score-only" {
				p.cfg.Metrics = false
			}
			reuse := inputs(r)
			var ms runtime.MemStats
			var mallocs uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts = ts.Add(time.Minute)
				in := md
				if mode != "score-only" {
					b.StopTimer()
					stamp(md, ts, r)
					in = pmetric.NewMetrics()
					md.CopyTo(in)
					runtime.ReadMemStats(&ms)
					mallocs -= ms.Mallocs
					b.StartTimer()
				} else {
					in = reuse[i%len(reuse)]
					restamp(in, ts)
				}
				if err := pm.ConsumeMetrics(context.Background(), in); err != nil {
					b.Fatal(err)
				}
				if mode != "score-only" {
					b.StopTimer()
					runtime.ReadMemStats(&ms)
					mallocs += ms.Mallocs
					b.StartTimer()
				}
			}
			b.StopTimer()
			points := float64(b.N) * benchSeries
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/points, "ns/point")
			if mode != "score-only" {
				b.ReportMetric(float64(mallocs)/points, "allocs/point")
			}
		})
	}
}

// TestSteadyStateZeroAllocs: scoring a batch of known series allocates
// nothing per point (the output metrics aside).
func TestSteadyStateZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	p, pm := newBenchProc(t, defaultCfg())
	r := rand.New(rand.NewPCG(1, 2))
	md := benchBatch()
	ts := warm(t, pm, md, r, 310)
	p.cfg.Metrics = false
	reuse := inputs(r)
	i := 0
	allocs := testing.AllocsPerRun(20, func() {
		ts = ts.Add(time.Minute)
		in := reuse[i%len(reuse)]
		i++
		restamp(in, ts)
		if _, err := p.processMetrics(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	})
	require.Less(t, allocs/benchSeries, 0.01, "%v allocations per batch of %d points", allocs, benchSeries)
}

// BenchmarkSeriesMemory reports the heap held per series.
func BenchmarkSeriesMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		const n = 100_000
		cfg := defaultCfg()
		cfg.MaxSeries = n
		cfg.MaxSeriesPerTenant = n // all in the default tenant
		p, err := newProcessor(nopSettings(), cfg)
		require.NoError(b, err)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var st batchStats
		for j := 0; j < n; j++ {
			p.score(context.Background(), seriesKey{uint64(j) * k1, uint64(j)}, "", int64(j+1), 1, 1, &st)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/series")
		runtime.KeepAlive(p)
	}
}
