package sqlexporter

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestCanonicalJSON(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("z", "last")
	m.PutInt("a", -3)
	m.PutDouble("d", 1.5)
	m.PutDouble("nan", math.NaN())
	m.PutDouble("inf", math.Inf(-1))
	m.PutDouble("big", 1e21)
	m.PutBool("b", true)
	m.PutEmptyBytes("bytes").FromRaw([]byte{0xff, 0x00})
	m.PutEmpty("empty")
	s := m.PutEmptySlice("list")
	s.AppendEmpty().SetStr("x")
	s.AppendEmpty().SetInt(2)
	inner := m.PutEmptyMap("map")
	inner.PutStr("y", "1")
	inner.PutStr("x", "2")
	m.PutStr("esc", "q\"b\\s\n\t\x01\x00é\xff\u2028")
	got := canonicalJSON(m)
	assert.Equal(t, `{"a":-3,"b":true,"big":1e+21,"bytes":"/wA=","d":1.5,"empty":null,`+
		`"esc":"q\"b\\s\n\t\u0001\uFFFDé\uFFFD`+"\u2028"+`","inf":"-Inf","list":["x",2],"map":{"x":"2","y":"1"},`+
		`"nan":"NaN","z":"last"}`, replaceFFFD(got))
	assert.True(t, json.Valid([]byte(got)), got)

	// The same set in another order gives the same text.
	m2 := pcommon.NewMap()
	keys := []string{}
	m.Range(func(k string, _ pcommon.Value) bool { keys = append(keys, k); return true })
	for i := len(keys) - 1; i >= 0; i-- {
		v, _ := m.Get(keys[i])
		v.CopyTo(m2.PutEmpty(keys[i]))
	}
	assert.Equal(t, got, canonicalJSON(m2))
	assert.Equal(t, "{}", canonicalJSON(pcommon.NewMap()))
}

// replaceFFFD spells U+FFFD as the escape the expected string uses.
func replaceFFFD(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\uFFFD' {
			out = append(out, []rune(`\uFFFD`)...)
			continue
		}
		out = append(out, r)
	}
	return string(out)
}

func TestSplitAttributes(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("custommetrics.key", "acme")
	m.PutBool("anomaly.flag", true)
	m.PutDouble("anomaly.score", 0.97)
	m.PutDouble("custommetrics.weight", 2)
	attrs, ann := splitAttributes(m)
	assert.Equal(t, `{"custommetrics.key":"acme"}`, attrs)
	assert.Equal(t, `{"anomaly.flag":true,"anomaly.score":0.97,"custommetrics.weight":2}`, ann)
	attrs, ann = splitAttributes(pcommon.NewMap())
	assert.Equal(t, "{}", attrs)
	assert.Equal(t, "{}", ann)
}

func TestBuildBatch(t *testing.T) {
	md := metricsOf(resA,
		dp{metric: "w", attrs: map[string]any{"k": "a", "anomaly.score": 0.1}, start: 10, end: 20, value: 1, aggregation: "AVG", interval: "DAY"},
		dp{metric: "w", attrs: map[string]any{"k": "a", "anomaly.score": 0.9}, start: 10, end: 20, value: 2}, // restates the first
		dp{metric: "w", attrs: map[string]any{"k": "a"}, start: 20, end: 30, value: 3, aggregation: "median", interval: "fortnight"},
		dp{metric: "p", end: 5, value: 4},
		dp{metric: "bad\x00name\xff", end: 6, value: 5},
		dp{metric: "inverted", start: 30, end: 20, value: 6},
		dp{metric: "nan", end: 7, value: math.NaN()},
	)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	norec := ms.AppendEmpty()
	norec.SetName("norec")
	p := norec.SetEmptyGauge().DataPoints().AppendEmpty()
	p.SetDoubleValue(1)
	p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	ms.AppendEmpty().SetName("empty-metric")
	ms.AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty().SetTimestamp(9) // no value
	// Timestamps are int64 (before 1970: two's complement): this window
	// runs from -1 ns to -2 ns, backwards.
	big := ms.AppendEmpty()
	big.SetName("backwards-before-1970")
	bp := big.SetEmptyGauge().DataPoints().AppendEmpty()
	bp.SetStartTimestamp(pcommon.Timestamp(math.MaxUint64))
	bp.SetTimestamp(pcommon.Timestamp(math.MaxUint64 - 1))
	bp.SetDoubleValue(1)

	b := buildBatch(md)
	require.Len(t, b.windows, 2)
	w := b.windows[0]
	if w.start != 10 {
		w = b.windows[1]
	}
	assert.Equal(t, 2.0, w.value, "the last occurrence in the batch wins")
	assert.Equal(t, `{"k":"a"}`, w.attrs)
	assert.Equal(t, `{"anomaly.score":0.9}`, w.annotations)
	assert.Equal(t, "", w.aggregation, "the restating metric carries no metadata")
	other := b.windows[0]
	if other.start != 20 {
		other = b.windows[1]
	}
	assert.Equal(t, w.seriesID, other.seriesID, "annotations are not identity")
	assert.Equal(t, "median", other.aggregation, "unknown aggregation stored as given")
	assert.Equal(t, "fortnight", other.interval)
	require.Len(t, b.points, 2)
	names := []string{b.points[0].metric, b.points[1].metric}
	assert.ElementsMatch(t, []string{"p", "bad\uFFFDname\uFFFD"}, names)
	assert.Equal(t, 5, b.skipped)
	assert.Equal(t, map[string]int{"invalid_timestamp": 2, "no_value": 3}, b.skippedKinds)

	b2 := buildBatch(metricsOf(resA, dp{metric: "w", start: 10, end: 20, value: 1, aggregation: "AVG", interval: "DAY"}))
	assert.Equal(t, "average", b2.windows[0].aggregation)
	assert.Equal(t, "day", b2.windows[0].interval)
}

func TestSeriesIDSeparatesFields(t *testing.T) {
	// The NUL separators keep (metric, resource, attributes) unambiguous.
	a := string(appendSeriesID(nil, "m", `{"a":1}`, `{}`))
	b := string(appendSeriesID(nil, "m", `{}`, `{"a":1}`))
	assert.NotEqual(t, a, b)
	assert.Len(t, a, 32)
}
