package sqlexporter

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// The benchmarks measure windows written per second (windows/s) through the
// exporter's push (one transaction per batch), for batches of 1, 100 and
// 1000 windows:
//   - insert: every batch writes new windows (the next hour of every series);
//   - restate: every batch restates the same windows with a new figure.
//
// go test -run '^$' -bench . -benchmem ./exporter/sqlexporter/

func BenchmarkWindowsSQLite(b *testing.B) { benchWindows(b, newSQLiteStore(b)) }

func BenchmarkWindowsPostgres(b *testing.B) {
	benchWindows(b, newPostgresStore(b, startPostgres(b)))
}

func benchWindows(b *testing.B, s store) {
	var hour int64 // the next new hour, across all sub-benchmarks
	for _, size := range []int{1, 100, 1000} {
		for _, mode := range []string{"insert", "restate"} {
			b.Run(fmt.Sprintf("batch=%d/%s", size, mode), func(b *testing.B) {
				e := s.newExporter(b)
				md, dps := benchBatch(size)
				hour++
				setWindow(dps, hour)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if mode == "insert" {
						hour++
						setWindow(dps, hour)
					}
					for j := 0; j < dps.Len(); j++ {
						dps.At(j).SetDoubleValue(float64(i))
					}
					if err := e.push(ctx, md); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "windows/s")
			})
		}
	}
	b.Logf("%d windows stored", s.count(b, "windows"))
}

// benchBatch is one hourly sum metric with size series, as the aggregate
// processor emits it.
func benchBatch(size int) (pmetric.Metrics, pmetric.NumberDataPointSlice) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "shop")
	rm.Resource().Attributes().PutStr(otelmap.AttrAPI, "threatconnect")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("orders")
	m.SetUnit("{order}")
	m.Metadata().PutStr(otelmap.MetaAggregation, "sum")
	m.Metadata().PutStr(otelmap.MetaInterval, "hour")
	dps := m.SetEmptyGauge().DataPoints()
	for k := range size {
		p := dps.AppendEmpty()
		p.Attributes().PutStr(otelmap.AttrKey, fmt.Sprintf("customer-%05d", k))
		p.Attributes().PutStr("region", "eu-west-1")
		p.SetDoubleValue(float64(k))
	}
	return md, dps
}

func setWindow(dps pmetric.NumberDataPointSlice, hour int64) {
	start := pcommon.NewTimestampFromTime(t0.Add(time.Duration(hour) * time.Hour))
	end := pcommon.NewTimestampFromTime(t0.Add(time.Duration(hour+1) * time.Hour))
	for j := 0; j < dps.Len(); j++ {
		dps.At(j).SetStartTimestamp(start)
		dps.At(j).SetTimestamp(end)
	}
}

// BenchmarkBuildBatch measures the conversion alone (no database).
func BenchmarkBuildBatch(b *testing.B) {
	md, dps := benchBatch(1000)
	setWindow(dps, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if len(buildBatch(md).windows) != 1000 {
			require.FailNow(b, "lost windows")
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "windows/s")
}

// BenchmarkConcurrentPoints measures raw points written per second when many
// callers push one point each at once, as the receiver does for BigFix
// values under load: the pushes share group commits. Each caller writes its
// own series (metrics "tag-N.deployments"), at increasing arrival times.
//
// go test -run '^$' -bench ConcurrentPoints -benchmem ./exporter/sqlexporter/
func BenchmarkConcurrentPoints(b *testing.B) {
	for _, callers := range []int{16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			e := newSQLiteStore(b).newExporter(b)
			var next atomic.Int64
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				series := next.Add(1)
				for i := int64(1); pb.Next(); i++ {
					md := metricsOf(map[string]any{otelmap.AttrAPI: "bigfix"}, dp{
						metric: fmt.Sprintf("tag-%d.deployments", series),
						attrs:  map[string]any{otelmap.AttrKey: "0"},
						end:    ns(t0) + i*int64(time.Millisecond),
						value:  float64(i),
					})
					if err := e.push(ctx, md); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
		})
	}
}
