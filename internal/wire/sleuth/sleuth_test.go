package sleuth

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr(s string) *string { return &s }

func TestParseBody(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		want                    Request
	}{
		{
			"the document's example, key in the body", "application/json",
			"{\n  \"value\": 1.5,\n  \"api_key\": \"KEY\"\n}",
			Request{Value: json.RawMessage(`1.5`), APIKey: ptr("KEY")},
		},
		{
			"JSON whatever the content type", "text/plain",
			`{"value":"0.25","date":"2024-03-01T10:00:00+01:00"}`,
			Request{Value: json.RawMessage(`"0.25"`), Date: ptr("2024-03-01T10:00:00+01:00")},
		},
		{
			"form data", "application/x-www-form-urlencoded; charset=utf-8",
			"value=3&api_key=k&date=2024-03-01",
			Request{Value: json.RawMessage(`"3"`), APIKey: ptr("k"), Date: ptr("2024-03-01")},
		},
		{
			"form data, empty parameters are given", "application/x-www-form-urlencoded",
			"value=&api_key=",
			Request{Value: json.RawMessage(`""`), APIKey: ptr("")},
		},
		{"form data, nothing given", "application/x-www-form-urlencoded", "", Request{}},
	} {
		got, err := ParseBody(tc.contentType, []byte(tc.body))
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
	for _, tc := range []struct{ contentType, body string }{
		{"application/json", `{"value":`},
		{"", ``},
		{"application/json", `[1]`},
		{"application/x-www-form-urlencoded", "value=%zz"},
	} {
		_, err := ParseBody(tc.contentType, []byte(tc.body))
		assert.Error(t, err, "%q %q", tc.contentType, tc.body)
	}
}

func TestNumber(t *testing.T) {
	for raw, want := range map[string]float64{`1.5`: 1.5, `"0.25"`: 0.25, `-3`: -3, `"1e3"`: 1000} {
		got, ok := Number(json.RawMessage(raw))
		assert.True(t, ok, raw)
		assert.Equal(t, want, got, raw)
	}
	for _, raw := range []string{``, `null`, `true`, `"abc"`, `"NaN"`, `"0x10"`, `1e999`, `[1]`, `""`} {
		_, ok := Number(json.RawMessage(raw))
		assert.False(t, ok, raw)
	}
}

func TestTooFrequent(t *testing.T) {
	// The document's 429 answer.
	assert.Equal(t, "You may only register a custom metric once every 120 seconds", TooFrequent(120))
}

// The header a forwarding client sends is the one the receiver reads; the
// scheme is matched in any case, as Sleuth's clients vary.
func TestAuthorization(t *testing.T) {
	key, ok := KeyOf(Authorization("k-1"))
	assert.True(t, ok)
	assert.Equal(t, "k-1", key)
	for header, want := range map[string]string{"ApiKey  k2 ": "k2", "APIKEY k3": "k3"} {
		key, ok := KeyOf(header)
		assert.True(t, ok, header)
		assert.Equal(t, want, key, header)
	}
	for _, header := range []string{"", "apikey", "apikey ", "Bearer k", "apikeyk"} {
		_, ok := KeyOf(header)
		assert.False(t, ok, header)
	}
	assert.Equal(t, "/api/1/impact/42/register_impact", ImpactPath(42))
}
