package launchdarkly

import (
	"math"
	"testing"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURLMatchers(t *testing.T) {
	tests := []struct {
		m    URLMatcher
		url  string
		want bool
	}{
		{URLMatcher{Kind: URLExact, URL: "https://a.example/x"}, "https://a.example/x", true},
		{URLMatcher{Kind: URLExact, URL: "https://a.example/x"}, "https://a.example/x?q=1", false},
		{URLMatcher{Kind: URLCanonical, URL: "https://a.example/x"}, "https://a.example/x/?q=1#h", true},
		{URLMatcher{Kind: URLCanonical, URL: "https://a.example/x"}, "https://a.example/y", false},
		{URLMatcher{Kind: URLSubstring, Substring: "foo"}, "https://a.example/foo/bar", true},
		{URLMatcher{Kind: URLRegex, Pattern: `/item/[0-9]+$`}, "https://a.example/item/42", true},
		{URLMatcher{Kind: URLRegex, Pattern: `/item/[0-9]+$`}, "https://a.example/item/x", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.m.Match(tt.url), "%+v %s", tt.m, tt.url)
	}
}

// Read-only members of the representation are ignored on create, every
// other unknown member is refused, and malformed bodies stay refused.
func TestParsePostReadOnlyMembers(t *testing.T) {
	f, err := ParsePost([]byte(`{"_id":"5902deadbeef667524a01290","_version":4,"_site":{"href":"x"},"_maintainer":{},
		"key":"m","kind":"custom","eventKey":"e","maintainerId":"569fdeadbeef1644facecafe"}`))
	require.NoError(t, err)
	assert.Equal(t, "m", f.Key)
	assert.Equal(t, "569fdeadbeef1644facecafe", *f.MaintainerID)
	for body, msg := range map[string]string{
		`{"key":"m","kind":"custom","eventKey":"e","colour":1}`: `unknown field "colour"`,
		`{"key":"m","kind":"custom","eventKey":"e"} {}`:         "trailing data",
		`[]`: "invalid request body",
		`{"key":"m","kind":"custom","eventKey":"e","analysisType":"p50"}`:        `analysisType "p50" is invalid`,
		`{"key":"m","kind":"custom","eventKey":"e","maintainerId":""}`:           "maintainerId must not be empty",
		`{"key":"m","kind":"custom","eventKey":"e","analysisType":"percentile"}`: "percentileValue is required",
	} {
		_, err := ParsePost([]byte(body))
		assert.ErrorContains(t, err, msg, body)
	}
	for m := range ReadOnly {
		assert.True(t, ServerManaged[m], m)
	}
	assert.True(t, ServerManaged["key"] && ServerManaged["kind"])
}

func TestParsePostDefaultsNameToKey(t *testing.T) {
	f, err := ParsePost([]byte(`{"key":"my-metric","kind":"pageview","urls":[{"kind":"substring","substring":"foo"}]}`))
	require.NoError(t, err)
	assert.Equal(t, "my-metric", *f.Name)
	assert.Equal(t, []string{}, f.Tags)
}

func FuzzParseEvents(f *testing.F) {
	for _, seed := range []string{
		`[{"kind":"custom","creationDate":1700000000000,"key":"purchase","context":{"kind":"user","key":"u"},"metricValue":12.5}]`,
		`[{"kind":"custom","creationDate":1,"key":"e","contextKeys":{"user":"u"}},{"kind":"index","context":{}}]`,
		`[{"kind":"summary","startDate":1,"endDate":2,"features":{}}]`,
		`[{"kind":"pageview","url":"https://a/b","creationDate":5},{"kind":"click","key":"k","selector":"#x"}]`,
		`[]`, `{}`, `[1]`, `[{"kind":"custom"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := ParseEvents(body)
		if err != nil {
			return
		}
		for _, e := range events {
			if e.Kind != EventCustom && e.Kind != EventPageview && e.Kind != EventClick {
				t.Fatalf("event of kind %q returned", e.Kind)
			}
			if e.Kind == EventCustom && e.Key == "" {
				t.Fatalf("custom event without key")
			}
			if e.CreationDate < 0 || math.IsNaN(e.CreationDate) {
				t.Fatalf("bad creationDate %v", e.CreationDate)
			}
		}
	})
}

// TestEventDatesInRange: creationDate must lie in the supported range, so
// that its nanoseconds fit OTLP (1e15 ms used to overflow into 1816).
func TestEventDatesInRange(t *testing.T) {
	ok := []string{`0`, `1700000000000`, `7258118399999`}
	for _, d := range ok {
		_, err := ParseEvents([]byte(`[{"kind":"custom","key":"k","creationDate":` + d + `}]`))
		assert.NoError(t, err, d)
	}
	for _, d := range []string{`-1`, `7258118400000`, `1e15`, `253402300799000`} {
		_, err := ParseEvents([]byte(`[{"kind":"custom","key":"k","creationDate":` + d + `}]`))
		assert.ErrorContains(t, err, "creationDate is out of range", d)
	}
}

// TestMetricFunc: numeric metrics aggregate by unitAggregationType (average
// when absent), the other kinds count their events.
func TestMetricFunc(t *testing.T) {
	yes, sum, avg := true, AggregationSum, AggregationAverage
	for _, tc := range []struct {
		m    Metric
		want aggregation.Func
	}{
		{Metric{Fields: Fields{Kind: KindCustom, IsNumeric: &yes}}, aggregation.Average},
		{Metric{Fields: Fields{Kind: KindCustom, IsNumeric: &yes, UnitAggregationType: &avg}}, aggregation.Average},
		{Metric{Fields: Fields{Kind: KindCustom, IsNumeric: &yes, UnitAggregationType: &sum}}, aggregation.Sum},
		{Metric{Fields: Fields{Kind: KindCustom}}, aggregation.Sum},
		{Metric{Fields: Fields{Kind: KindPageview}}, aggregation.Sum},
		{Metric{Fields: Fields{Kind: KindClick, UnitAggregationType: &avg}}, aggregation.Sum},
	} {
		assert.Equal(t, tc.want, tc.m.Func(), "%+v", tc.m)
	}
}
