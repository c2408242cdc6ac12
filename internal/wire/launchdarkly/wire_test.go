package launchdarkly

import (
	"math"
	"testing"

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
