package sqlexporter // import "github.com/custommetrics/bundle/exporter/sqlexporter"

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
)

// Metric types stored in the metric_type column.
const (
	metricTypeGauge = "gauge"
	metricTypeSum   = "sum"
)

// windowRow is one row of the windows table.
type windowRow struct {
	seriesID    string
	metric      string
	attrs       string // canonical JSON of the identifying attributes
	annotations string // canonical JSON of the annotating attributes (see isAnnotation)
	resAttrs    string // canonical JSON
	start, end  int64  // unix nanoseconds
	value       float64
	aggregation string // "" when the metric does not say (stored as NULL)
	interval    string // "" when the metric does not say (stored as NULL)
	status      string // running, closed, restatement (custommetrics.window); "" = NULL
	metricType  string
	unit        string
}

// pointRow is one row of the points table.
type pointRow struct {
	seriesID    string
	metric      string
	attrs       string
	annotations string
	resAttrs    string
	time        int64 // unix nanoseconds
	value       float64
	metricType  string
	unit        string
}

// batch is what one pmetric.Metrics becomes: the rows to write, deduplicated
// on their keys (the last occurrence wins, as it would if the points had
// arrived one after the other) and sorted by key so that concurrent writers
// lock rows in the same order.
type batch struct {
	windows     []windowRow
	points      []pointRow
	cumulatives []cumulativeRow
	histograms  []histogramRow
	cumIdx      map[startKey]int
	histIdx     map[startKey]int
	// skipped counts data points that are not stored.
	skipped int
	// skippedKinds names the metric types that were skipped, for the debug log.
	skippedKinds map[string]int
}

type windowKey struct {
	seriesID   string
	start, end int64
}

type pointKey struct {
	seriesID string
	time     int64
}

// buildBatch converts md into rows. It never fails: points that cannot be
// stored are counted in skipped.
func buildBatch(mds ...pmetric.Metrics) *batch {
	b := &batch{}
	windowIdx := map[windowKey]int{}
	pointIdx := map[pointKey]int{}
	var buf []byte
	for _, md := range mds {
		b.add(md, windowIdx, pointIdx, &buf)
	}
	slices.SortFunc(b.windows, func(x, y windowRow) int {
		return cmp.Or(strings.Compare(x.seriesID, y.seriesID), cmp.Compare(x.start, y.start), cmp.Compare(x.end, y.end))
	})
	slices.SortFunc(b.points, func(x, y pointRow) int {
		return cmp.Or(strings.Compare(x.seriesID, y.seriesID), cmp.Compare(x.time, y.time))
	})
	slices.SortFunc(b.cumulatives, func(x, y cumulativeRow) int {
		return cmp.Or(strings.Compare(x.seriesID, y.seriesID), cmp.Compare(x.start, y.start))
	})
	slices.SortFunc(b.histograms, func(x, y histogramRow) int {
		return cmp.Or(strings.Compare(x.seriesID, y.seriesID), cmp.Compare(x.start, y.start))
	})
	return b
}

// add adds md's rows to b; a row of a key already in b replaces it.
func (b *batch) add(md pmetric.Metrics, windowIdx map[windowKey]int, pointIdx map[pointKey]int, bufp *[]byte) {
	buf := *bufp
	defer func() { *bufp = buf }()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		resAttrs := canonicalJSON(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				name := cleanText(m.Name())
				unit := cleanText(m.Unit())
				identify := func(a pcommon.Map) (id, attrs, annotations string) {
					attrs, annotations = splitAttributes(a)
					buf = appendSeriesID(buf[:0], name, resAttrs, attrs)
					return string(buf), attrs, annotations
				}
				var dps pmetric.NumberDataPointSlice
				var metricType string
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps, metricType = m.Gauge().DataPoints(), metricTypeGauge
				case pmetric.MetricTypeSum:
					dps, metricType = m.Sum().DataPoints(), metricTypeSum
				case pmetric.MetricTypeHistogram:
					b.addHistograms(m.Histogram(), identify, name, resAttrs, unit)
					continue
				case pmetric.MetricTypeExponentialHistogram:
					b.addExponentialHistograms(m.ExponentialHistogram(), identify, name, resAttrs, unit)
					continue
				case pmetric.MetricTypeSummary:
					b.skip("summary", m.Summary().DataPoints().Len())
					continue
				default:
					continue // an empty metric has no data points
				}
				agg, interval := metricDefinition(m.Metadata())
				// The aggregate processor's figures are windows even when they
				// start at 0 (1970-01-01).
				kind, window := m.Metadata().Get(otelmap.MetaWindow)
				status := ""
				if window {
					status = windowStatus(kind.Str())
				}
				// A cumulative sum is a running total since its start: one row
				// per series and start (cumulatives), not a window per export.
				cumulative := !window && m.Type() == pmetric.MetricTypeSum &&
					m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityCumulative
				for p := 0; p < dps.Len(); p++ {
					dp := dps.At(p)
					value, ok := numberValue(dp)
					if !ok {
						b.skip("no_value", 1)
						continue
					}
					// int64 Unix nanoseconds: before 1970 negative, carried as
					// their two's complement (see calendar.MinTime).
					ts, start := int64(dp.Timestamp()), int64(dp.StartTimestamp())
					if cumulative {
						id, attrs, annotations := identify(dp.Attributes())
						b.putCumulative(cumulativeRow{seriesID: id, metric: name, attrs: attrs, annotations: annotations, resAttrs: resAttrs,
							start: rowStart(start, ts), time: ts, value: value, unit: unit})
						continue
					}
					isWindow := window || start != 0
					if isWindow && start >= ts {
						b.skip("invalid_timestamp", 1)
						continue
					}
					attrs, annotations := splitAttributes(dp.Attributes())
					buf = appendSeriesID(buf[:0], name, resAttrs, attrs)
					id := string(buf)
					if isWindow {
						row := windowRow{
							seriesID: id, metric: name, attrs: attrs, annotations: annotations, resAttrs: resAttrs,
							start: start, end: ts, value: value,
							aggregation: agg, interval: interval, metricType: metricType, unit: unit, status: status,
						}
						key := windowKey{id, row.start, row.end}
						if n, dup := windowIdx[key]; dup {
							b.windows[n] = row
						} else {
							windowIdx[key] = len(b.windows)
							b.windows = append(b.windows, row)
						}
						continue
					}
					row := pointRow{
						seriesID: id, metric: name, attrs: attrs, annotations: annotations, resAttrs: resAttrs,
						time: ts, value: value, metricType: metricType, unit: unit,
					}
					key := pointKey{id, row.time}
					if n, dup := pointIdx[key]; dup {
						b.points[n] = row
					} else {
						pointIdx[key] = len(b.points)
						b.points = append(b.points, row)
					}
				}
			}
		}
	}
}

func (b *batch) skip(kind string, n int) {
	if n == 0 {
		return
	}
	if b.skippedKinds == nil {
		b.skippedKinds = map[string]int{}
	}
	b.skipped += n
	b.skippedKinds[kind] += n
}

// numberValue returns the point's value as a float64; false for a point that
// carries no value (the no-recorded-value flag, an empty value, NaN). NaN is
// refused because SQLite stores it as NULL.
func numberValue(dp pmetric.NumberDataPoint) (float64, bool) {
	if dp.Flags().NoRecordedValue() {
		return 0, false
	}
	switch dp.ValueType() {
	case pmetric.NumberDataPointValueTypeDouble:
		v := dp.DoubleValue()
		return v, !math.IsNaN(v)
	case pmetric.NumberDataPointValueTypeInt:
		return float64(dp.IntValue()), true
	}
	return 0, false
}

// metricDefinition reads custommetrics.aggregation and custommetrics.interval
// from the metric's metadata. Known spellings are stored canonically ("avg"
// becomes "average", "HOUR" becomes "hour"); unknown ones as given.
func metricDefinition(md pcommon.Map) (agg, interval string) {
	if v, ok := md.Get(otelmap.MetaAggregation); ok {
		agg = strings.TrimSpace(v.AsString())
		if f, err := aggregation.ParseFunc(agg); err == nil {
			agg = f.String()
		}
		agg = cleanText(agg)
	}
	if v, ok := md.Get(otelmap.MetaInterval); ok {
		interval = strings.TrimSpace(v.AsString())
		if iv, err := calendar.ParseInterval(interval); err == nil {
			interval = iv.String()
		}
		interval = cleanText(interval)
	}
	return agg, interval
}

// appendSeriesID appends the series identity: the first 16 bytes of
// SHA-256(metric NUL resource-attributes-JSON NUL attributes-JSON), in hex.
func appendSeriesID(dst []byte, metric, resAttrs, attrs string) []byte {
	h := sha256.New()
	h.Write([]byte(metric))
	h.Write([]byte{0})
	h.Write([]byte(resAttrs))
	h.Write([]byte{0})
	h.Write([]byte(attrs))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return hex.AppendEncode(dst, sum[:16])
}

// cleanText makes s storable as text in both databases: invalid UTF-8 and
// NUL (which PostgreSQL refuses in text and jsonb) become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// canonicalJSON encodes m as JSON with keys sorted (recursively), no
// whitespace, and a fixed spelling for every value, so that the same
// attribute set always gives the same text:
//   - strings: invalid UTF-8 and NUL become U+FFFD;
//   - ints: decimal; doubles: shortest representation ('g'), NaN and ±Inf as
//     the strings "NaN", "+Inf", "-Inf";
//   - bytes: base64 strings; empty values: null;
//   - a key repeated in the map: the first occurrence, as pcommon.Map.Get.
func canonicalJSON(m pcommon.Map) string {
	if m.Len() == 0 {
		return "{}"
	}
	return string(appendMap(make([]byte, 0, 16*m.Len()), m))
}

// isAnnotation reports whether a data point attribute describes the value
// rather than the series it belongs to: the anomaly processor's anomaly.*
// attributes (flag, score, expected, lower, upper; they change with every
// value) and custommetrics.weight. They are stored in the annotations column,
// outside the series identity, so that an annotated restatement of a window
// still replaces the window's row.
func isAnnotation(key string) bool {
	return strings.HasPrefix(key, otelmap.AnomalyAttrPrefix) || key == otelmap.AttrWeight
}

// splitAttributes returns the canonical JSON of the identifying attributes
// and of the annotations of a data point.
func splitAttributes(m pcommon.Map) (attrs, annotations string) {
	if m.Len() == 0 {
		return "{}", "{}"
	}
	kvs := sortedPairs(m)
	var id, ann []kv
	for _, e := range kvs {
		if isAnnotation(e.k) {
			ann = append(ann, e)
		} else {
			id = append(id, e)
		}
	}
	if len(ann) == 0 {
		return string(appendPairs(make([]byte, 0, 16*len(id)), id)), "{}"
	}
	return string(appendPairs(nil, id)), string(appendPairs(nil, ann))
}

type kv struct {
	k string
	v pcommon.Value
}

// sortedPairs returns the entries of m sorted by key, keeping only the first
// of repeated keys.
func sortedPairs(m pcommon.Map) []kv {
	kvs := make([]kv, 0, m.Len())
	for k, v := range m.All() {
		kvs = append(kvs, kv{k, v})
	}
	slices.SortStableFunc(kvs, func(x, y kv) int { return strings.Compare(x.k, y.k) })
	return slices.CompactFunc(kvs, func(x, y kv) bool { return x.k == y.k })
}

func appendMap(b []byte, m pcommon.Map) []byte {
	return appendPairs(b, sortedPairs(m))
}

func appendPairs(b []byte, kvs []kv) []byte {
	b = append(b, '{')
	for i, e := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.k)
		b = append(b, ':')
		b = appendValue(b, e.v)
	}
	return append(b, '}')
}

func appendValue(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return appendString(b, v.Str())
	case pcommon.ValueTypeInt:
		return strconv.AppendInt(b, v.Int(), 10)
	case pcommon.ValueTypeDouble:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return append(b, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(b, `"+Inf"`...)
		case math.IsInf(f, -1):
			return append(b, `"-Inf"`...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(b, v.Bool())
	case pcommon.ValueTypeBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes().AsRaw())
		return append(b, '"')
	case pcommon.ValueTypeMap:
		return appendMap(b, v.Map())
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		b = append(b, '[')
		for i := 0; i < s.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, s.At(i))
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (RFC 8259), escaping only what
// must be escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == 0:
				b = append(b, "\uFFFD"...)
			case c < 0x20:
				switch c {
				case '\n':
					b = append(b, '\\', 'n')
				case '\r':
					b = append(b, '\\', 'r')
				case '\t':
					b = append(b, '\\', 't')
				default:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// windowStatus reads custommetrics.window: one of the three kinds, else "".
func windowStatus(s string) string {
	switch s {
	case otelmap.WindowRunning, otelmap.WindowClosed, otelmap.WindowRestatement:
		return s
	}
	return ""
}
