package threatconnect

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

func TestParseDataDocumentForms(t *testing.T) {
	p, err := ParseData([]byte(`{"name": "app1", "value": "1"}`), false)
	require.NoError(t, err)
	assert.Equal(t, DataPoint{Name: "app1", Value: 1, Weight: 1}, p)

	p, err = ParseData([]byte(`{"value": "2", "date": "2018-01-19T14:44:00Z"}`), false)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2018, 1, 19, 14, 44, 0, 0, time.UTC), p.Date)

	p, err = ParseData([]byte(`{"value": 2.5, "weight": 3}`), false)
	require.NoError(t, err)
	assert.Equal(t, DataPoint{Value: 2.5, Weight: 3, HasWeight: true}, p)

	p, err = ParseData([]byte(`{}`), true)
	require.NoError(t, err, "Count metrics take entries without a value")
	assert.Equal(t, 1.0, p.Value)
}

func TestSignMatchesThreatConnectExample(t *testing.T) {
	// The string to sign is "<path?query>:<METHOD>:<timestamp>", as in ThreatConnect's
	// quick start: /api/v2/indicators/hosts/example.com?Owner=Common%20Community:GET:1513703787
	sig := Sign("secret", "/api/v2/indicators/hosts/example.com?Owner=Common%20Community", "GET", 1513703787)
	// Computed independently: printf '%s' '/api/v2/indicators/hosts/example.com?Owner=Common%20Community:GET:1513703787' | openssl dgst -sha256 -hmac secret -binary | base64
	assert.Equal(t, "qcQ78w1LcTYOSn2A4hYtkwvNsBnti4Ed+ZpIzM7oSjE=", sig)
}

func FuzzParseData(f *testing.F) {
	for _, seed := range []string{
		`{"name": "{metricKeyName}", "value": "{incrementValue}", "date": "{date}", "weight": "{weight}"}`,
		`{"name": "app1", "value": "1"}`,
		`{"value": "2", "date": "2018-01-19T14:44:00Z"}`,
		`{"value": "2"}`,
		`{"value": 1e308, "weight": "0"}`,
		`{"value": 1e300, "weight": 1e300}`,
		` {"name":"k","value":-0.5e-3 ,"weight":"2","date":"2018-01-19T14:44:00Z"} `,
		`{"Value": 1}`, `{"value": 1, "value": 2}`, `{"value": 01}`, `{"value": 1.}`, `{"name": "a\u00e9", "value": 1}`,
		`{"value": null}`, `{"value": true}`, `{"value": "1", "date": null}`, `{"value": 1} x`, `{"value":"\u0031"}`,
		`{"value": "NaN"}`,
		`[]`, `null`, `{"value":`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, countMetric bool) {
		p, err := ParseData(body, countMetric)
		// The scanner for the common shape and the strict decoder agree.
		strict, serr := parseData(body, countMetric, false)
		require.Equal(t, serr == nil, err == nil, "fast: %v, strict: %v", err, serr)
		if err != nil {
			require.Equal(t, serr.Error(), err.Error())
			return
		}
		require.Equal(t, strict, p)
		if !aggregation.Accepts(p.Value, p.Weight) {
			t.Fatalf("accepted a value that the aggregation would drop: %+v", p)
		}
	})
}

func FuzzParseCreate(f *testing.F) {
	for _, seed := range []string{
		`{"name" : "newMetric", "dataType" : "Sum", "interval" : "Daily", "keyedValues" : false, "description" : "Testing API Updates"}`,
		`{"name":"x","dataType":"average","interval":"YEARLY","keyedValues":true}`,
		`{"name":"42","dataType":"Sum","interval":"Daily"}`,
		`{"name":"a/b","dataType":"Sum","interval":"Daily"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseCreate(body)
		if err != nil {
			return
		}
		if m.Name == "" || ValidName(m.Name) != nil {
			t.Fatalf("accepted an invalid name %q", m.Name)
		}
		if !contains(DataTypes, m.DataType) || !contains(Intervals, m.Interval) {
			t.Fatalf("accepted a non-canonical definition %+v", m)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{"TC-Token APIV2:430:c8mTcH:1234567890123:7mbi=", "TC 12345:abc=", "TC :", "TC-Token ", "Bearer x", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := ParseAuthorization(header)
		if err != nil {
			return
		}
		if (c.Token == "") == (c.AccessID == "") {
			t.Fatalf("credentials must be exactly one of token or HMAC: %+v", c)
		}
		if c.AccessID != "" && (c.Signature == "" || strings.Contains(c.AccessID, ":")) {
			t.Fatalf("bad HMAC credentials %+v from %q", c, header)
		}
	})
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// BenchmarkParseData: the scanner for the common shape against the strict
// decoder alone, on the document's data body.
func BenchmarkParseData(b *testing.B) {
	body := []byte(`{"name": "app1", "value": "5", "date": "2018-01-19T14:44:00Z"}`)
	for _, fast := range []bool{true, false} {
		name := "strict"
		if fast {
			name = "scan"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseData(body, false, fast); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestVocabulary(t *testing.T) {
	// The document's lists of dataType and interval values, literally.
	for dataType, fn := range map[string]aggregation.Func{
		"Sum": aggregation.Sum, "Count": aggregation.Count, "Min": aggregation.Min, "Max": aggregation.Max,
		"First": aggregation.First, "Last": aggregation.Last, "Average": aggregation.Average,
	} {
		roundTrip(t, dataType, fn, Func, DataType)
	}
	for interval, iv := range map[string]calendar.Interval{
		"Hourly": calendar.Hour, "Daily": calendar.Day, "Weekly": calendar.Week, "Monthly": calendar.Month, "Yearly": calendar.Year,
	} {
		roundTrip(t, interval, iv, Window, IntervalOf)
	}
	assert.Len(t, DataTypes, len(aggregation.Funcs), "every function has a dataType")

	// Stored definitions hold the canonical spelling (ParseCreate), so
	// anything else, the bundle's own names included, is not a dataType.
	for _, bad := range []string{"", "sum", "SUM", "average", "avg", "Median", " Sum"} {
		_, ok := Func(bad)
		assert.False(t, ok, bad)
	}
	for _, bad := range []string{"", "hourly", "hour", "Hour", "five_minute", "Quarterly"} {
		_, ok := Window(bad)
		assert.False(t, ok, bad)
	}
	_, ok := IntervalOf(calendar.FiveMinutes)
	assert.False(t, ok, "ThreatConnect has no 5-minute interval")
	_, ok = DataType(0)
	assert.False(t, ok)
	_, ok = IntervalOf(0)
	assert.False(t, ok)
}

func TestParseCreateStoresTheDocumentSpelling(t *testing.T) {
	m, err := ParseCreate([]byte(`{"name":"n","dataType":"average","interval":"HOURLY"}`))
	require.NoError(t, err)
	fn, ok := Func(m.DataType)
	assert.True(t, ok && fn == aggregation.Average, m.DataType)
	iv, ok := Window(m.Interval)
	assert.True(t, ok && iv == calendar.Hour, m.Interval)
}

// roundTrip checks that spelling maps to want and back.
func roundTrip[T comparable](t *testing.T, spelling string, want T, parse func(string) (T, bool), name func(T) (string, bool)) {
	t.Helper()
	got, ok := parse(spelling)
	assert.True(t, ok, spelling)
	assert.Equal(t, want, got, spelling)
	back, ok := name(want)
	assert.True(t, ok, spelling)
	assert.Equal(t, spelling, back)
}

// TestFuncFold: another server's dataType counts in any case; unknown ones do not.
func TestFuncFold(t *testing.T) {
	for _, s := range []string{"Sum", "sum", "SUM"} {
		fn, ok := FuncFold(s)
		assert.True(t, ok && fn == aggregation.Sum, s)
	}
	_, ok := FuncFold("Median")
	assert.False(t, ok)
}
