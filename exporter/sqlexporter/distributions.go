package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Cumulative sums and histograms are kept as what they are: one row per
// series and start, which each export of the series updates (the newest
// timestamp wins). A series' start is its StartTimestamp, or its Timestamp
// when that is unset (a delta point without a start is a row of its own).
// So a cumulative counter exported every 10 s is one row whose value is the
// latest total, and a delta histogram is one row per interval.

// cumulativeRow is one row of the cumulatives table.
type cumulativeRow struct {
	seriesID, metric, attrs, annotations, resAttrs string
	start, time                                    int64
	value                                          float64
	unit                                           string
}

// histogramRow is one row of the histograms table.
type histogramRow struct {
	seriesID, metric, attrs, annotations, resAttrs string
	start, time                                    int64
	temporality, kind                              string // delta|cumulative; explicit|exponential
	count                                          uint64
	sum, min, max                                  sql.NullFloat64
	bounds, counts                                 string // explicit: JSON arrays of upper bounds and bucket counts
	scale, zeroCount, posOffset, negOffset         sql.NullInt64
	posCounts, negCounts                           sql.NullString // exponential: JSON arrays
	unit                                           string
}

type startKey struct {
	seriesID string
	start    int64
}

// rowStart is the start that keys a row: StartTimestamp, else Timestamp.
func rowStart(start, ts int64) int64 {
	if start == 0 {
		return ts
	}
	return start
}

func temporalityName(t pmetric.AggregationTemporality) string {
	if t == pmetric.AggregationTemporalityCumulative {
		return "cumulative"
	}
	return "delta"
}

func jsonArray[T any](s []T) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func optFloat(has bool, v float64) sql.NullFloat64 {
	return sql.NullFloat64{Float64: v, Valid: has && v-v == 0}
}

// addHistograms turns an explicit-bucket histogram's points into rows.
func (b *batch) addHistograms(h pmetric.Histogram, id func(pcommon.Map) (string, string, string), metric, resAttrs, unit string) {
	dps := h.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			b.skip("no_value", 1)
			continue
		}
		seriesID, attrs, ann := id(dp.Attributes())
		ts := int64(dp.Timestamp())
		b.putHistogram(histogramRow{
			seriesID: seriesID, metric: metric, attrs: attrs, annotations: ann, resAttrs: resAttrs,
			start: rowStart(int64(dp.StartTimestamp()), ts), time: ts,
			temporality: temporalityName(h.AggregationTemporality()), kind: "explicit", count: dp.Count(),
			sum: optFloat(dp.HasSum(), dp.Sum()), min: optFloat(dp.HasMin(), dp.Min()), max: optFloat(dp.HasMax(), dp.Max()),
			bounds: jsonArray(dp.ExplicitBounds().AsRaw()), counts: jsonArray(dp.BucketCounts().AsRaw()), unit: unit,
		})
	}
}

// addExponentialHistograms turns an exponential histogram's points into rows.
func (b *batch) addExponentialHistograms(h pmetric.ExponentialHistogram, id func(pcommon.Map) (string, string, string), metric, resAttrs, unit string) {
	dps := h.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if dp.Flags().NoRecordedValue() {
			b.skip("no_value", 1)
			continue
		}
		seriesID, attrs, ann := id(dp.Attributes())
		ts := int64(dp.Timestamp())
		b.putHistogram(histogramRow{
			seriesID: seriesID, metric: metric, attrs: attrs, annotations: ann, resAttrs: resAttrs,
			start: rowStart(int64(dp.StartTimestamp()), ts), time: ts,
			temporality: temporalityName(h.AggregationTemporality()), kind: "exponential", count: dp.Count(),
			sum: optFloat(dp.HasSum(), dp.Sum()), min: optFloat(dp.HasMin(), dp.Min()), max: optFloat(dp.HasMax(), dp.Max()),
			bounds: "[]", counts: "[]",
			scale:     sql.NullInt64{Int64: int64(dp.Scale()), Valid: true},
			zeroCount: sql.NullInt64{Int64: int64(dp.ZeroCount()), Valid: true},
			posOffset: sql.NullInt64{Int64: int64(dp.Positive().Offset()), Valid: true},
			negOffset: sql.NullInt64{Int64: int64(dp.Negative().Offset()), Valid: true},
			posCounts: sql.NullString{String: jsonArray(dp.Positive().BucketCounts().AsRaw()), Valid: true},
			negCounts: sql.NullString{String: jsonArray(dp.Negative().BucketCounts().AsRaw()), Valid: true},
			unit:      unit,
		})
	}
}

// putHistogram keeps the newest row of each (series, start).
func (b *batch) putHistogram(r histogramRow) {
	k := startKey{r.seriesID, r.start}
	if n, ok := b.histIdx[k]; ok {
		if r.time >= b.histograms[n].time {
			b.histograms[n] = r
		}
		return
	}
	if b.histIdx == nil {
		b.histIdx = map[startKey]int{}
	}
	b.histIdx[k] = len(b.histograms)
	b.histograms = append(b.histograms, r)
}

// putCumulative keeps the newest row of each (series, start).
func (b *batch) putCumulative(r cumulativeRow) {
	k := startKey{r.seriesID, r.start}
	if n, ok := b.cumIdx[k]; ok {
		if r.time >= b.cumulatives[n].time {
			b.cumulatives[n] = r
		}
		return
	}
	if b.cumIdx == nil {
		b.cumIdx = map[startKey]int{}
	}
	b.cumIdx[k] = len(b.cumulatives)
	b.cumulatives = append(b.cumulatives, r)
}

var (
	cumulativeColumns = []string{
		"series_id", "metric", "attributes", "annotations", "resource_attributes",
		"start_unix_nano", "time_unix_nano", "value", "unit", "updated_at_unix_nano",
	}
	histogramColumns = []string{
		"series_id", "metric", "attributes", "annotations", "resource_attributes",
		"start_unix_nano", "time_unix_nano", "temporality", "kind", "count", "sum", "min", "max",
		"explicit_bounds", "bucket_counts", "scale", "zero_count",
		"positive_offset", "positive_bucket_counts", "negative_offset", "negative_bucket_counts",
		"unit", "updated_at_unix_nano",
	}
)

// newestWinsUpsert writes n rows of table, keyed by (series_id,
// start_unix_nano); an existing row is replaced by a newer export only.
func newestWinsUpsert(d dialect, table string, cols []string, n int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	writeValues(&sb, d, n, len(cols))
	sb.WriteString(" ON CONFLICT (series_id, start_unix_nano) DO UPDATE SET ")
	first := true
	for _, c := range cols {
		if c == "series_id" || c == "start_unix_nano" || c == "metric" || c == "attributes" || c == "resource_attributes" {
			continue
		}
		if !first {
			sb.WriteString(", ")
		}
		first = false
		sb.WriteString(c + " = excluded." + c)
	}
	sb.WriteString(" WHERE excluded.time_unix_nano >= " + table + ".time_unix_nano")
	return sb.String()
}

// writeDistributions writes the batch's cumulative sums and histograms (few
// rows: chunked multi-row upserts on both databases).
func (e *sqlExporter) writeDistributions(ctx context.Context, tx *sql.Tx, b *batch, now int64) (int64, error) {
	n1, err := execChunked(ctx, tx, len(b.cumulatives), len(cumulativeColumns),
		func(n int) string {
			return e.stmts.get("cumulatives", n, func() string { return newestWinsUpsert(e.dialect, "cumulatives", cumulativeColumns, n) })
		},
		func(args []any, i int) []any {
			r := &b.cumulatives[i]
			return append(args, r.seriesID, r.metric, r.attrs, r.annotations, r.resAttrs, r.start, r.time, r.value, r.unit, now)
		})
	if err != nil {
		return 0, err
	}
	n2, err := execChunked(ctx, tx, len(b.histograms), len(histogramColumns),
		func(n int) string {
			return e.stmts.get("histograms", n, func() string { return newestWinsUpsert(e.dialect, "histograms", histogramColumns, n) })
		},
		func(args []any, i int) []any {
			r := &b.histograms[i]
			return append(args, r.seriesID, r.metric, r.attrs, r.annotations, r.resAttrs, r.start, r.time,
				r.temporality, r.kind, int64(r.count), r.sum, r.min, r.max, r.bounds, r.counts, r.scale, r.zeroCount,
				r.posOffset, r.posCounts, r.negOffset, r.negCounts, r.unit, now)
		})
	return n1 + n2, err
}
