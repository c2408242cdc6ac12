package sqlexporter

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/custommetrics/bundle/exporter/sqlexporter/internal/metadatatest"
)

// The scenarios run unchanged on SQLite and on PostgreSQL.

var resA = map[string]any{"service.name": "shop", "custommetrics.api": "threatconnect"}

// scenarioWriteReadBack writes windows, raw points, anomaly scores and
// metrics the exporter skips, and reads every column back.
func scenarioWriteReadBack(t *testing.T, s store) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	e := startExporter(t, s.config(), metadatatest.NewSettings(tt))

	hour := t0.Add(time.Hour)
	md := metricsOf(resA,
		dp{metric: "orders", attrs: map[string]any{"region": "eu", "custommetrics.key": "acme"}, start: ns(t0), end: ns(hour),
			value: 5, aggregation: "sum", interval: "HOUR", unit: "{order}"},
		dp{metric: "orders", attrs: map[string]any{"custommetrics.key": "zeta"}, start: ns(t0), end: ns(hour),
			value: 7, intValue: true, aggregation: "sum", interval: "hour", unit: "{order}", sum: true},
		dp{metric: "latency", attrs: map[string]any{"custommetrics.key": "acme"}, start: ns(t0), end: ns(hour),
			value: 0.25, aggregation: "avg"}, // no interval in the metadata
		dp{metric: "temperature", attrs: map[string]any{"room": "a"}, end: ns(t0.Add(time.Minute)), value: 21.5, unit: "Cel"},
		dp{metric: "temperature.anomaly.score", attrs: map[string]any{"room": "a"}, end: ns(t0.Add(time.Minute)), value: 0.93},
		dp{metric: "requests", end: ns(t0.Add(time.Minute)), value: 3, intValue: true, sum: true},
	)
	// Stored in histograms: a histogram and an exponential histogram; skipped: a summary.
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	h := ms.AppendEmpty()
	h.SetName("sizes")
	h.SetEmptyHistogram().DataPoints().AppendEmpty().SetCount(3)
	eh := ms.AppendEmpty()
	eh.SetName("sizes.exp")
	eh.SetEmptyExponentialHistogram().DataPoints().AppendEmpty().SetCount(3)
	sm := ms.AppendEmpty()
	sm.SetName("sizes.summary")
	sm.SetEmptySummary().DataPoints().AppendEmpty().SetCount(3)

	require.NoError(t, e.push(context.Background(), md))

	res := `{"custommetrics.api":"threatconnect","service.name":"shop"}`
	ws := s.windows(t)
	require.Len(t, ws, 3)
	for i := range ws {
		assert.Len(t, ws[i].SeriesID, 32)
		assert.Equal(t, res, ws[i].ResAttrs)
		assert.Equal(t, int64(1), ws[i].Revision)
		assert.Positive(t, ws[i].UpdatedAt)
		assert.Equal(t, ns(t0), ws[i].Start)
		assert.Equal(t, ns(hour), ws[i].End)
	}
	byKey := map[string]storedWindow{}
	for _, w := range ws {
		byKey[w.Metric+" "+w.Attrs] = w
	}
	w := byKey[`orders {"custommetrics.key":"acme","region":"eu"}`]
	assert.Equal(t, 5.0, w.Value)
	assert.Equal(t, "sum", w.Aggregation.String)
	assert.Equal(t, "hour", w.Interval.String, "interval spelled canonically")
	assert.Equal(t, "gauge", w.MetricType)
	assert.Equal(t, "{order}", w.Unit)
	w = byKey[`orders {"custommetrics.key":"zeta"}`]
	assert.Equal(t, 7.0, w.Value)
	assert.Equal(t, "sum", w.MetricType)
	w = byKey[`latency {"custommetrics.key":"acme"}`]
	assert.Equal(t, "average", w.Aggregation.String)
	assert.False(t, w.Interval.Valid, "no interval given: NULL")
	assert.Empty(t, w.Unit)

	ps := s.points(t)
	require.Len(t, ps, 3)
	assert.Equal(t, "requests", ps[0].Metric)
	assert.Equal(t, "{}", ps[0].Attrs)
	assert.Equal(t, 3.0, ps[0].Value)
	assert.Equal(t, "sum", ps[0].MetricType)
	assert.Equal(t, "temperature", ps[1].Metric)
	assert.Equal(t, `{"room":"a"}`, ps[1].Attrs)
	assert.Equal(t, ns(t0.Add(time.Minute)), ps[1].Time)
	assert.Equal(t, 21.5, ps[1].Value)
	assert.Equal(t, "Cel", ps[1].Unit)
	assert.Equal(t, "temperature.anomaly.score", ps[2].Metric)
	assert.Equal(t, 0.93, ps[2].Value)
	assert.Equal(t, res, ps[2].ResAttrs)

	metadatatest.AssertEqualExporterSQLWindowsWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualExporterSQLPointsWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 3}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualExporterSQLDataPointsSkipped(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	assert.Equal(t, 2, s.count(t, "histograms"))

	// The same series whatever the order of its attributes.
	md2 := pmetric.NewMetrics()
	rm := md2.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "shop")
	rm.Resource().Attributes().PutStr("custommetrics.api", "threatconnect")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("orders")
	m.SetUnit("{order}")
	p := m.SetEmptyGauge().DataPoints().AppendEmpty()
	p.Attributes().PutStr("region", "eu")
	p.Attributes().PutStr("custommetrics.key", "acme")
	p.SetStartTimestamp(pcommonTS(t0))
	p.SetTimestamp(pcommonTS(hour))
	p.SetDoubleValue(6)
	require.NoError(t, e.push(context.Background(), md2))
	ws = s.windows(t)
	require.Len(t, ws, 3, "attribute order must not create a new row")
	for _, w := range ws {
		if w.Metric == "orders" && w.Attrs == `{"custommetrics.key":"acme","region":"eu"}` {
			assert.Equal(t, 6.0, w.Value)
			assert.Equal(t, int64(2), w.Revision)
			assert.Equal(t, "sum", w.Aggregation.String, "kept: the restatement carried no metadata")
			assert.Equal(t, "hour", w.Interval.String)
		}
	}
}

// scenarioDuplicateBatch writes the same batch twice: the second write
// changes nothing, not even revision or updated_at.
func scenarioDuplicateBatch(t *testing.T, s store) {
	e := s.newExporter(t)
	md := metricsOf(resA, loadBatch(0, 20)...)
	require.NoError(t, e.push(context.Background(), md))
	ws, ps := s.windows(t), s.points(t)
	require.Len(t, ws, 20)
	require.Len(t, ps, 20)
	time.Sleep(2 * time.Millisecond) // a rewrite would show in updated_at
	require.NoError(t, e.push(context.Background(), md))
	assert.Equal(t, ws, s.windows(t))
	assert.Equal(t, ps, s.points(t))

	// A batch that carries the same window or point twice: the last one wins.
	dup := metricsOf(resA,
		dp{metric: "dup", start: ns(t0), end: ns(t0.Add(time.Hour)), value: 1},
		dp{metric: "dup", start: ns(t0), end: ns(t0.Add(time.Hour)), value: 2},
		dp{metric: "dup.raw", end: ns(t0), value: 1},
		dp{metric: "dup.raw", end: ns(t0), value: 2},
	)
	require.NoError(t, e.push(context.Background(), dup))
	var v float64
	var rev int64
	require.NoError(t, s.db.QueryRow(`SELECT value, revision FROM windows WHERE metric = 'dup'`).Scan(&v, &rev))
	assert.Equal(t, 2.0, v)
	assert.Equal(t, int64(1), rev)
	require.NoError(t, s.db.QueryRow(`SELECT value FROM points WHERE metric = 'dup.raw'`).Scan(&v))
	assert.Equal(t, 2.0, v)
}

// scenarioRestatement restates one window several times.
func scenarioRestatement(t *testing.T, s store) {
	e := s.newExporter(t)
	win := func(v float64) pmetric.Metrics {
		return metricsOf(resA, dp{metric: "orders", attrs: map[string]any{"custommetrics.key": "acme"},
			start: ns(t0), end: ns(t0.Add(time.Hour)), value: v, aggregation: "max", interval: "hour"})
	}
	for _, v := range []float64{1, 4, 9} {
		require.NoError(t, e.push(context.Background(), win(v)))
	}
	ws := s.windows(t)
	require.Len(t, ws, 1)
	assert.Equal(t, 9.0, ws[0].Value)
	assert.Equal(t, int64(3), ws[0].Revision)
	// A restatement with the same figure (a retry) changes nothing.
	require.NoError(t, e.push(context.Background(), win(9)))
	assert.Equal(t, ws, s.windows(t))
	// A smaller figure is written too: last write wins, not max.
	require.NoError(t, e.push(context.Background(), win(2)))
	ws = s.windows(t)
	assert.Equal(t, 2.0, ws[0].Value)
	assert.Equal(t, int64(4), ws[0].Revision)
	// The next window is another row.
	next := metricsOf(resA, dp{metric: "orders", attrs: map[string]any{"custommetrics.key": "acme"},
		start: ns(t0.Add(time.Hour)), end: ns(t0.Add(2 * time.Hour)), value: 3, aggregation: "max", interval: "hour"})
	require.NoError(t, e.push(context.Background(), next))
	ws = s.windows(t)
	require.Len(t, ws, 2)
	assert.Equal(t, ws[0].SeriesID, ws[1].SeriesID)
	assert.Equal(t, []float64{2, 3}, []float64{ws[0].Value, ws[1].Value})
}

// loadBatch returns the data points of batch i of a load: 5 series, each
// with a window restated by 10 consecutive batches (window w = i/10 holds
// value i) and a raw point at i seconds.
func loadBatch(i, series int) []dp {
	out := make([]dp, 0, 2*series)
	w := int64(i / 10)
	for s := range series {
		attrs := map[string]any{"custommetrics.key": fmt.Sprintf("k%03d", s)}
		out = append(out,
			dp{metric: "load", attrs: attrs, start: ns(t0) + w*int64(time.Hour), end: ns(t0) + (w+1)*int64(time.Hour),
				value: float64(i*1000 + s), aggregation: "last", interval: "hour"},
			dp{metric: "load.raw", attrs: attrs, end: ns(t0) + int64(i)*int64(time.Second), value: float64(i*1000 + s)})
	}
	return out
}

// checkLoad verifies that batches [0, n) of loadBatch landed exactly once,
// with the figure of the last restatement of every window.
func checkLoad(t *testing.T, s store, n, series int) {
	t.Helper()
	ws := s.windows(t)
	windows := (n + 9) / 10
	require.Len(t, ws, windows*series)
	for _, w := range ws {
		idx := int((w.Start - ns(t0)) / int64(time.Hour))
		last := min(idx*10+9, n-1)
		var k int
		_, err := fmt.Sscanf(w.Attrs, `{"custommetrics.key":"k%03d"}`, &k)
		require.NoError(t, err)
		assert.Equal(t, float64(last*1000+k), w.Value, "window %d of series %d", idx, k)
		assert.LessOrEqual(t, w.Revision, int64(10))
	}
	ps := s.points(t)
	require.Len(t, ps, n*series)
	for _, p := range ps {
		i := int((p.Time - ns(t0)) / int64(time.Second))
		var k int
		_, err := fmt.Sscanf(p.Attrs, `{"custommetrics.key":"k%03d"}`, &k)
		require.NoError(t, err)
		assert.Equal(t, float64(i*1000+k), p.Value)
	}
}

// scenarioConcurrentWriters runs two exporters on one database, each pushing
// from several goroutines at once: windows of their own, and windows that
// both write with the same final figure.
func scenarioConcurrentWriters(t *testing.T, s store) {
	const (
		exporters  = 2
		goroutines = 4
		batches    = 15
	)
	exps := make([]*sqlExporter, exporters)
	var wg sync.WaitGroup
	// The exporters also start (and migrate) at the same time.
	errs := make(chan error, exporters*goroutines)
	for i := range exps {
		e, err := newSQLExporter(s.config(), exportertestSettings())
		require.NoError(t, err)
		exps[i] = e
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.start(context.Background(), componenttest.NewNopHost())
		}()
	}
	wg.Wait()
	for range exps {
		require.NoError(t, <-errs)
	}
	t.Cleanup(func() {
		for _, e := range exps {
			require.NoError(t, e.shutdown(context.Background()))
		}
	})
	shared := func(b int) dp { // the same windows for everyone; the figure grows with b
		return dp{metric: "shared", attrs: map[string]any{"custommetrics.key": fmt.Sprintf("s%d", b%3)},
			start: ns(t0), end: ns(t0.Add(time.Hour)), value: float64(b / 3)}
	}
	for x, e := range exps {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					dps := []dp{shared(b)}
					for k := range 10 {
						dps = append(dps, dp{metric: "own", attrs: map[string]any{"exporter": x, "goroutine": g, "k": k},
							start: ns(t0) + int64(b)*int64(time.Hour), end: ns(t0) + int64(b+1)*int64(time.Hour), value: float64(b)})
					}
					if err := e.push(context.Background(), metricsOf(resA, dps...)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	ws := s.windows(t)
	var own, sharedRows int
	for _, w := range ws {
		switch w.Metric {
		case "own":
			own++
			assert.Equal(t, float64((w.Start-ns(t0))/int64(time.Hour)), w.Value)
			assert.Equal(t, int64(1), w.Revision)
		case "shared":
			sharedRows++
			// Every writer ends with the figure of its last batch of that window.
			assert.Equal(t, float64((batches-1)/3), w.Value, w.Attrs)
		}
	}
	assert.Equal(t, exporters*goroutines*batches*10, own)
	assert.Equal(t, 3, sharedRows)
}

func exportertestSettings() exporter.Settings { return exportertest.NewNopSettings(typ) }

func pcommonTS(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

// scenarioEdgeDates: windows before 1970 (negative Unix nanoseconds, carried
// in OTLP as their two's complement), the window that starts at the epoch
// (StartTimestamp 0: a window only by its custommetrics.window mark) and the
// first and last supported years are stored with their exact bounds, and so
// is a raw point before 1970; nothing is skipped.
func scenarioEdgeDates(t *testing.T, s store) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	e := startExporter(t, s.config(), metadatatest.NewSettings(tt))
	day := int64(24 * time.Hour)
	y1700 := ns(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC))
	y1701 := ns(time.Date(1701, 1, 1, 0, 0, 0, 0, time.UTC))
	y2199 := ns(time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC))
	y2200 := ns(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	md := metricsOf(resA,
		dp{metric: "backfill", start: -day, end: 0, value: 1, aggregation: "sum", interval: "day", window: "closed"},
		dp{metric: "backfill", start: 0, end: day, value: 2, aggregation: "sum", interval: "day", window: "closed"},
		dp{metric: "backfill", start: -20 * 365 * day, end: -20*365*day + day, value: 3, aggregation: "sum", interval: "day", window: "closed"},
		dp{metric: "years", start: y1700, end: y1701, value: 4, aggregation: "sum", interval: "year", window: "closed"},
		dp{metric: "years", start: y2199, end: y2200, value: 5, aggregation: "sum", interval: "year", window: "closed"},
		dp{metric: "raw", end: -day / 2, value: 6},
	)
	require.NoError(t, e.push(context.Background(), md))
	var got [][2]int64
	for _, w := range s.windows(t) {
		got = append(got, [2]int64{w.Start, w.End})
	}
	assert.ElementsMatch(t, [][2]int64{{-day, 0}, {0, day}, {-20 * 365 * day, -20*365*day + day}, {y1700, y1701}, {y2199, y2200}}, got)
	pts := s.points(t)
	require.Len(t, pts, 1)
	assert.Equal(t, -day/2, pts[0].Time)
	metadatatest.AssertEqualExporterSQLWindowsWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 5}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualExporterSQLPointsWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
}

// scenarioWindowStatus: the running figure, the closing figure and a
// restatement of one window upsert one row whose status follows them; a
// closing figure equal to the running one still marks the row closed.
func scenarioWindowStatus(t *testing.T, s store) {
	e := s.newExporter(t)
	w := func(value float64, status string) dp {
		return dp{metric: "orders", start: ns(t0), end: ns(t0.Add(time.Hour)), value: value, aggregation: "sum", interval: "hour", window: status}
	}
	read := func() (float64, string, int64) {
		rows := s.windows(t)
		require.Len(t, rows, 1)
		var status sql.NullString
		require.NoError(t, s.db.QueryRow(`SELECT status FROM windows`).Scan(&status))
		return rows[0].Value, status.String, rows[0].Revision
	}
	for _, step := range []struct {
		value    float64
		status   string
		revision int64
	}{{2, "running", 1}, {3, "running", 2}, {3, "closed", 3}, {3, "closed", 3}, {5, "restatement", 4}} {
		require.NoError(t, e.push(context.Background(), metricsOf(resA, w(step.value, step.status))))
		v, st, rev := read()
		assert.Equal(t, step.value, v)
		assert.Equal(t, step.status, st)
		assert.Equal(t, step.revision, rev, "%+v", step)
	}
}

// scenarioCumulativesAndHistograms: a cumulative counter exported three
// times is one row holding the latest total (not three overlapping
// windows); an older export arriving late changes nothing; delta
// histograms are one row per interval with count, sum, min, max and the
// buckets; an exponential histogram keeps scale, offsets and counts.
func scenarioCumulativesAndHistograms(t *testing.T, s store) {
	e := s.newExporter(t)
	ctx := context.Background()
	cumulative := func(at time.Duration, v int64) pmetric.Metrics {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("requests")
		sum := m.SetEmptySum()
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		sum.SetIsMonotonic(true)
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(ns(t0)))
		dp.SetTimestamp(pcommon.Timestamp(ns(t0.Add(at))))
		dp.SetIntValue(v)
		return md
	}
	for _, x := range []struct {
		at time.Duration
		v  int64
	}{{10 * time.Second, 5}, {20 * time.Second, 55}, {30 * time.Second, 555}, {15 * time.Second, 7}} {
		require.NoError(t, e.push(ctx, cumulative(x.at, x.v)))
	}
	var n int
	var v float64
	var tm int64
	require.NoError(t, s.db.QueryRow(`SELECT COUNT(*), MAX(value), MAX(time_unix_nano) FROM cumulatives WHERE metric = 'requests'`).Scan(&n, &v, &tm))
	assert.Equal(t, 1, n)
	assert.Equal(t, 555.0, v, "the latest total; the late export of 15s changed nothing")
	assert.Equal(t, ns(t0.Add(30*time.Second)), tm)
	assert.Equal(t, 0, s.count(t, "windows"))

	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	h := ms.AppendEmpty()
	h.SetName("latency")
	h.SetUnit("ms")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range 2 {
		dp := hist.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.Timestamp(ns(t0.Add(time.Duration(i) * time.Minute))))
		dp.SetTimestamp(pcommon.Timestamp(ns(t0.Add(time.Duration(i+1) * time.Minute))))
		dp.ExplicitBounds().FromRaw([]float64{10, 100, 1000})
		dp.BucketCounts().FromRaw([]uint64{5, 3, 1, uint64(i)})
		dp.SetCount(9 + uint64(i))
		dp.SetSum(1234.5)
		dp.SetMin(1)
		dp.SetMax(900)
	}
	eh := ms.AppendEmpty()
	eh.SetName("sizes")
	exp := eh.SetEmptyExponentialHistogram()
	exp.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	edp := exp.DataPoints().AppendEmpty()
	edp.SetStartTimestamp(pcommon.Timestamp(ns(t0)))
	edp.SetTimestamp(pcommon.Timestamp(ns(t0.Add(time.Minute))))
	edp.SetScale(3)
	edp.SetZeroCount(2)
	edp.SetCount(10)
	edp.Positive().SetOffset(-2)
	edp.Positive().BucketCounts().FromRaw([]uint64{1, 2, 5})
	require.NoError(t, e.push(ctx, md))

	rows, err := s.db.Query(`SELECT start_unix_nano, count, sum, min, max, ` + s.jsonText("explicit_bounds") + `, ` + s.jsonText("bucket_counts") + `, kind, temporality, unit
FROM histograms WHERE metric = 'latency' ORDER BY start_unix_nano`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var start, count int64
		var sum, mn, mx float64
		var bounds, counts, kind, temporality, unit string
		require.NoError(t, rows.Scan(&start, &count, &sum, &mn, &mx, &bounds, &counts, &kind, &temporality, &unit))
		got = append(got, fmt.Sprintf("%d %d %g %g %g %s %s %s %s %s", (start-ns(t0))/int64(time.Minute), count, sum, mn, mx,
			normJSON(t, bounds), normJSON(t, counts), kind, temporality, unit))
	}
	require.NoError(t, rows.Close())
	assert.Equal(t, []string{
		"0 9 1234.5 1 900 [10,100,1000] [5,3,1,0] explicit delta ms",
		"1 10 1234.5 1 900 [10,100,1000] [5,3,1,1] explicit delta ms",
	}, got)
	var scale, zero, offset int64
	var pos string
	require.NoError(t, s.db.QueryRow(`SELECT scale, zero_count, positive_offset, `+s.jsonText("positive_bucket_counts")+` FROM histograms WHERE metric = 'sizes'`).Scan(&scale, &zero, &offset, &pos))
	assert.Equal(t, []any{int64(3), int64(2), int64(-2), "[1,2,5]"}, []any{scale, zero, offset, normJSON(t, pos)})
}

// scenarioPointsKeyMigration: a database of schema version 3 keeps every
// raw point, and its uniqueness, when version 4 puts the time first in the
// points key.
func scenarioPointsKeyMigration(t *testing.T, s store) {
	ctx := context.Background()
	_, err := migrateTo(ctx, s.db, s.dialect(), 3)
	require.NoError(t, err)
	_, err = s.db.Exec(`INSERT INTO points (` + strings.Join(pointColumns, ", ") + `) VALUES
  ('a', 'cpu', '{"k":"1"}', '{}', '{"host":"h"}', 2000, 1.5, 'gauge', '1', 7),
  ('a', 'cpu', '{"k":"1"}', '{}', '{"host":"h"}', 1000, 2.5, 'gauge', '1', 7),
  ('b', 'mem', '{}', '{}', '{}', 1000, -3, 'sum', '', 8)`)
	require.NoError(t, err)
	before := s.points(t)
	require.Len(t, before, 3)
	// What users add next to the exporter's schema survives.
	userObjects := []string{
		`CREATE VIEW cpu_points AS SELECT time_unix_nano, value FROM points WHERE metric = 'cpu'`,
		`CREATE INDEX points_by_value ON points (value)`,
	}
	if s.driver == DriverSQLite {
		userObjects = append(userObjects, `CREATE TABLE point_log (n INTEGER)`,
			`CREATE TRIGGER points_logged AFTER INSERT ON points BEGIN INSERT INTO point_log VALUES (1); END`)
	}
	for _, stmt := range userObjects {
		_, err = s.db.Exec(stmt)
		require.NoError(t, err, stmt)
	}

	e := s.newExporter(t)
	var n int
	require.NoError(t, s.db.QueryRow(`SELECT count(*) FROM cpu_points`).Scan(&n))
	assert.Equal(t, 2, n, "a user's view still reads the table")
	if s.driver == DriverSQLite {
		require.NoError(t, s.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('points_by_value', 'points_logged') AND tbl_name = 'points'`).Scan(&n))
		assert.Equal(t, 2, n, "a user's index and trigger are there again")
		_, err = s.db.Exec(`DROP INDEX points_by_value`) // checkSchema lists the exporter's own
		require.NoError(t, err)
	} else {
		_, err = s.db.Exec(`DROP INDEX points_by_value`)
		require.NoError(t, err)
	}
	checkSchema(t, s)
	assert.Equal(t, before, s.points(t), "the rows survive the migration as they were")
	assert.Equal(t, []string{"time_unix_nano", "series_id"}, primaryKey(t, s, "points"))
	_, err = s.db.Exec(`INSERT INTO points (` + strings.Join(pointColumns, ", ") + `) VALUES
  ('a', 'cpu', '{"k":"1"}', '{}', '{"host":"h"}', 1000, 9, 'gauge', '1', 9)`)
	require.Error(t, err, "(series, time) is still unique")
	if s.driver == DriverSQLite {
		require.NoError(t, e.push(context.Background(), metricsOf(resA, loadBatch(0, 1)...)))
		require.NoError(t, s.db.QueryRow(`SELECT count(*) FROM point_log`).Scan(&n))
		assert.Equal(t, 1, n, "the user's trigger fires")
	}
}
