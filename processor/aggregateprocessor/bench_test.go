package aggregateprocessor

import (
	"context"
	"fmt"
	"github.com/custommetrics/bundle/internal/windows"
	"runtime"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/intervalprocessor"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/custommetrics/bundle/internal/otelmap"
)

const benchBatch = 10_000

var benchAt = time.Date(2024, 5, 15, 10, 0, 0, 0, time.UTC)

// benchInput returns batches of benchBatch gauge points that together touch
// `series` series (one attribute set each), every point in the same open hour.
// The metric asks for "last" per hour (our receiver's metadata); the same
// batches feed contrib's intervalprocessor, whose gauge handling is also
// "keep the last value per series".
func benchInput(series int) []pmetric.Metrics {
	nb := max(1, series/benchBatch)
	out := make([]pmetric.Metrics, nb)
	s := 0
	for b := range nb {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(otelmap.AttrAPI, "bench")
		rm.Resource().Attributes().PutStr("host.name", "bench-host")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("bench.metric")
		m.Metadata().PutStr(otelmap.MetaAggregation, "last")
		m.Metadata().PutStr(otelmap.MetaInterval, "hour")
		dps := m.SetEmptyGauge().DataPoints()
		dps.EnsureCapacity(benchBatch)
		for i := range benchBatch {
			dp := dps.AppendEmpty()
			dp.SetDoubleValue(float64(i))
			dp.SetTimestamp(pcommon.NewTimestampFromTime(benchAt.Add(time.Duration(i) * time.Millisecond)))
			dp.Attributes().PutStr(otelmap.AttrKey, fmt.Sprintf("key-%07d", s%series))
			dp.Attributes().PutStr("region", "eu-west-1")
			s++
		}
		out[b] = md
	}
	return out
}

func reportPerPoint(b *testing.B, points int, before runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(points), "allocs/point")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(points), "ns/point")
}

// BenchmarkAggregate measures the processor (memory mode; keep_raw so the
// input is not modified and need not be cloned) in steady state: all series
// exist. Reported: points/s, allocs/point, and heap bytes per open
// series-window (heap growth when the windows are created, after GC).
func BenchmarkAggregate(b *testing.B) {
	for _, series := range []int{1, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("series=%d", series), func(b *testing.B) {
			input := benchInput(series)
			cfg := defaultCfg()
			cfg.KeepRaw = true
			cfg.MaxSeriesWindows = 2_000_000
			cfg.MaxSeriesWindowsPerTenant = 0
			runtime.GC()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			p := newTestProcessor(b, cfg, consumertest.NewNop(), &clock{t: benchAt}, nil)
			ctx := context.Background()
			for _, md := range input { // create every series-window
				require.NoError(b, p.ConsumeMetrics(ctx, md))
			}
			runtime.GC()
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			// The input batches were allocated before m0, so the growth is the
			// processor's state (plus its fixed shards, negligible at 10k+).
			heapPerWindow := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(p.windows.Len())

			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := range b.N {
				if err := p.ConsumeMetrics(ctx, input[i%len(input)]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportPerPoint(b, b.N*benchBatch, before)
			b.ReportMetric(heapPerWindow, "heapB/window") // after ResetTimer, which clears reported metrics
			runtime.KeepAlive(p)
		})
	}
}

// BenchmarkCompareInterval runs our processor and contrib's intervalprocessor
// (v0.161.0, interval 60s) on the same batches. Both mutate their input, so
// each iteration clones its batch; BenchmarkCompareInterval/clone-only
// measures that cost so it can be subtracted.
func BenchmarkCompareInterval(b *testing.B) {
	for _, series := range []int{1, 10_000, 1_000_000} {
		input := benchInput(series)
		run := func(b *testing.B, consume func(context.Context, pmetric.Metrics) error) {
			ctx := context.Background()
			for _, md := range input {
				c := pmetric.NewMetrics()
				md.CopyTo(c)
				require.NoError(b, consume(ctx, c))
			}
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := range b.N {
				c := pmetric.NewMetrics()
				input[i%len(input)].CopyTo(c)
				if err := consume(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportPerPoint(b, b.N*benchBatch, before)
		}
		b.Run(fmt.Sprintf("series=%d/clone-only", series), func(b *testing.B) {
			run(b, func(context.Context, pmetric.Metrics) error { return nil })
		})
		b.Run(fmt.Sprintf("series=%d/aggregate", series), func(b *testing.B) {
			cfg := defaultCfg()
			cfg.MaxSeriesWindows = 2_000_000
			cfg.MaxSeriesWindowsPerTenant = 0
			p := newTestProcessor(b, cfg, consumertest.NewNop(), &clock{t: benchAt}, nil)
			run(b, p.ConsumeMetrics)
		})
		b.Run(fmt.Sprintf("series=%d/intervalprocessor", series), func(b *testing.B) {
			f := intervalprocessor.NewFactory()
			icfg := f.CreateDefaultConfig()
			ip, err := f.CreateMetrics(context.Background(), processortest.NewNopSettings(f.Type()), icfg, consumertest.NewNop())
			require.NoError(b, err)
			require.NoError(b, ip.Start(context.Background(), componenttest.NewNopHost()))
			defer func() { require.NoError(b, ip.Shutdown(context.Background())) }()
			run(b, ip.ConsumeMetrics)
		})
	}
}

// BenchmarkAggregateDurable measures the processor with a storage client
// (in-memory, so this is the cost of group commit bookkeeping and encoding,
// not of disk I/O) and 8 concurrent callers.
func BenchmarkAggregateDurable(b *testing.B) {
	input := benchInput(10_000)
	cfg := defaultCfg()
	cfg.KeepRaw = true
	p := newTestProcessor(b, cfg, consumertest.NewNop(), &clock{t: benchAt}, newMemStorage())
	ctx := context.Background()
	require.NoError(b, p.ConsumeMetrics(ctx, input[0]))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.ConsumeMetrics(ctx, input[0]); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "points/s")
}

var (
	_ component.Config  = (*Config)(nil)
	_ processor.Metrics = (*aggProcessor)(nil)
)

// BenchmarkRoundsOf measures the split of a check's closing figures into
// one-per-series emissions, for 100k closing figures: all of one window
// start (the usual check), and two windows per series (back-dated values).
func BenchmarkRoundsOf(b *testing.B) {
	d := &windows.Desc{}
	for _, perSeries := range []int{1, 2} {
		b.Run(fmt.Sprintf("windows-per-series=%d", perSeries), func(b *testing.B) {
			snaps := make([]windows.Snap, 100_000)
			for i := range snaps {
				snaps[i] = windows.Snap{Desc: d, Attrs: fmt.Appendf(nil, "custommetrics.key=k%06d;|", i/perSeries),
					Start: int64(i % perSeries), Kind: windows.Final}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if len(roundsOf(snaps)) != perSeries {
					b.Fatal("rounds")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(snaps)), "ns/figure")
		})
	}
}
