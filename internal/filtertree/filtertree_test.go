package filtertree

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

var docKeys = Options{AllowedKeys: map[string]bool{"app_version": true, "os_version": true}}

func TestDocumentExamples(t *testing.T) {
	// The two filter examples of the Embrace document, and its empty filter.
	for _, doc := range []string{
		"{\n  \"op\":\"and\",\n  \"children\":[{\"field_op\":\"eq\",\"key\":\"os_version\",\"val\":\"12\"}]\n}",
		`{"op": "and", "children": [{"field_op": "eq", "key": "os_version", "val": "12"}]}`,
	} {
		f, err := Parse([]byte(doc), docKeys)
		require.NoError(t, err)
		b, err := json.Marshal(f)
		require.NoError(t, err)
		assert.JSONEq(t, doc, string(b))
		assert.True(t, f.Match(map[string]string{"os_version": "12", "app_version": "1.0"}))
		assert.False(t, f.Match(map[string]string{"os_version": "13"}))
		assert.False(t, f.Match(map[string]string{"app_version": "1.0"}), "a missing attribute matches no leaf")
		assert.Equal(t, []string{"os_version"}, f.Keys())
	}
	f, err := Parse([]byte(`{}`), docKeys)
	require.NoError(t, err)
	assert.True(t, f.IsEmpty())
	assert.True(t, f.Match(nil))
	b, _ := json.Marshal(f)
	assert.Equal(t, `{}`, string(b))
}

func TestOperators(t *testing.T) {
	attrs := map[string]string{"os_version": "12.10", "app_version": "3.2.1-beta"}
	tests := []struct {
		leaf string
		want bool
	}{
		{`{"field_op":"eq","key":"os_version","val":"12.10"}`, true},
		{`{"field_op":"neq","key":"os_version","val":"12.10"}`, false},
		{`{"field_op":"neq","key":"os_version","val":"12"}`, true},
		{`{"field_op":"gt","key":"os_version","val":"12.9"}`, true},
		{`{"field_op":"gte","key":"os_version","val":"12.10"}`, true},
		{`{"field_op":"lt","key":"os_version","val":"13"}`, true},
		{`{"field_op":"lte","key":"os_version","val":"9"}`, false},
		{`{"field_op":"gt","key":"os_version","val":12}`, true},
		{`{"field_op":"in","key":"os_version","val":["11","12.10"]}`, true},
		{`{"field_op":"in","key":"os_version","val":["11","12"]}`, false},
		{`{"field_op":"in","key":"os_version","val":"12.10"}`, true},
		{`{"field_op":"contains","key":"app_version","val":"beta"}`, true},
		{`{"field_op":"contains","key":"app_version","val":"rc"}`, false},
		{`{"field_op":"neq","key":"missing","val":"x"}`, false},
	}
	for _, tt := range tests {
		f, err := Parse([]byte(tt.leaf), Options{})
		require.NoError(t, err, tt.leaf)
		assert.Equal(t, tt.want, f.Match(attrs), tt.leaf)
		m := pcommon.NewMap()
		for k, v := range attrs {
			m.PutStr(k, v)
		}
		assert.Equal(t, tt.want, f.MatchMap(m), tt.leaf)
		b, _ := json.Marshal(f)
		assert.JSONEq(t, tt.leaf, string(b), "a leaf echoes what was sent")
	}
}

func TestTrees(t *testing.T) {
	f, err := Parse([]byte(`{"op":"or","children":[
		{"op":"and","children":[{"field_op":"eq","key":"os_version","val":"12"},{"field_op":"gte","key":"app_version","val":"2.0"}]},
		{"field_op":"eq","key":"os_version","val":"17"}]}`), docKeys)
	require.NoError(t, err)
	assert.True(t, f.Match(map[string]string{"os_version": "12", "app_version": "2.1"}))
	assert.False(t, f.Match(map[string]string{"os_version": "12", "app_version": "1.9"}))
	assert.True(t, f.Match(map[string]string{"os_version": "17"}))
	assert.Equal(t, []string{"os_version", "app_version"}, f.Keys())

	and, _ := Parse([]byte(`{"op":"and","children":[]}`), Options{})
	or, _ := Parse([]byte(`{"op":"or","children":[]}`), Options{})
	assert.True(t, and.Match(nil))
	assert.False(t, or.Match(nil))

	// A stored tree decodes back into an evaluable filter.
	b, _ := json.Marshal(f)
	var back Filter
	require.NoError(t, json.Unmarshal(b, &back))
	assert.True(t, back.Match(map[string]string{"os_version": "17"}))
}

func TestParseRefuses(t *testing.T) {
	for doc, msg := range map[string]string{
		`[]`:                                   "must be a JSON object",
		`{"op":"xor","children":[]}`:           `must be "and" or "or"`,
		`{"op":"and"}`:                         "children: required",
		`{"op":"and","children":{}}`:           "must be an array",
		`{"op":"and","children":[1]}`:          "must be an object",
		`{"op":"and","children":[],"extra":1}`: `unknown member "extra"`,
		`{"field_op":"like","key":"os_version","val":"1"}`:                                                  "field_op: must be one of",
		`{"field_op":"eq","key":"country","val":"1"}`:                                                       `"country" cannot be filtered on`,
		`{"field_op":"eq","key":"os_version"}`:                                                              "val: required",
		`{"field_op":"eq","key":"os_version","val":true}`:                                                   "must be a string or a number",
		`{"field_op":"in","key":"os_version","val":[{}]}`:                                                   "array of strings",
		`{"field_op":"eq","key":"","val":"1"}`:                                                              "key: a non-empty string",
		`{"op":"and","field_op":"eq","children":[]}`:                                                        "not both",
		`{"key":"os_version"}`:                                                                              `needs "op"`,
		`{"op":"and","children":[{"op":"or","children":[{"field_op":"eq","key":"os_version","val":1}]}]} x`: "trailing",
	} {
		_, err := Parse([]byte(doc), docKeys)
		require.Error(t, err, doc)
		assert.Contains(t, err.Error(), msg, doc)
	}
	deep := `{"field_op":"eq","key":"os_version","val":"1"}`
	for range MaxDepth + 1 {
		deep = `{"op":"and","children":[` + deep + `]}`
	}
	_, err := Parse([]byte(deep), docKeys)
	assert.ErrorContains(t, err, "deeper than")
}

func TestCompare(t *testing.T) {
	assert.Equal(t, 1, Compare("12.10", "12.9"))
	assert.Equal(t, 1, Compare("10", "9"))
	assert.Equal(t, -1, Compare("12", "12.0.1"))
	assert.Equal(t, 0, Compare("12.0", "12.00"))
	assert.Equal(t, -1, Compare("1.2", "1.beta"))
	assert.Equal(t, -1, Compare("a", "b"))
}
