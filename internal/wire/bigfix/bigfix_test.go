package bigfix

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/wire/number"
)

func TestMetrics(t *testing.T) {
	for body, want := range map[string]string{
		// The document's examples: a member, and a collection of members.
		`{"bla": "3"}`:                    `[{"bla":"3"}]`,
		` [{"number_of_endpoints": "5"}]`: `[{"number_of_endpoints":"5"}]`,
		// "Whatever JSON parseable string is acceptable."
		`"text"`: `["text"]`, "42\n": `[42]`, `null`: `[null]`, `[]`: `[]`,
	} {
		got, err := Metrics([]byte(body))
		require.NoError(t, err, body)
		assert.JSONEq(t, want, string(got), body)
		assert.Equal(t, want, string(got), "compacted: %s", body)
	}
	for body, msg := range map[string]string{
		"": "the body must be JSON", " \n": "the body must be JSON",
		`<BES/>`: "the body is not valid JSON", `{"a":`: "the body is not valid JSON", `1 2`: "the body is not valid JSON",
	} {
		_, err := Metrics([]byte(body))
		assert.EqualError(t, err, msg, body)
	}
}

func TestLeaves(t *testing.T) {
	metrics, err := Metrics([]byte(`[{"b": {"y": [1, "2", true, null, "x"], "x": "-0.5"}, "a": 3}, {"a": "1e3"}]`))
	require.NoError(t, err)
	leaves, err := Leaves(metrics, "custom")
	require.NoError(t, err)
	assert.Equal(t, []Leaf{
		{Name: "custom.a", Member: 0, Value: 3},
		{Name: "custom.b.x", Member: 0, Value: -0.5},
		{Name: "custom.b.y.0", Member: 0, Value: 1},
		{Name: "custom.b.y.1", Member: 0, Value: 2},
		{Name: "custom.a", Member: 1, Value: 1000},
	}, leaves)

	// A member's names do not depend on how many members there are.
	one, err := Leaves(json.RawMessage(`[{"a": 3}]`), "custom")
	require.NoError(t, err)
	assert.Equal(t, []Leaf{{Name: "custom.a", Value: 3}}, one)

	// Strings that are not numbers in JSON's grammar are text.
	none, err := Leaves(json.RawMessage(`[{"hex": "0x10", "sep": "1_000", "nan": "NaN", "inf": "Inf", "big": "1e999"}]`), "t")
	require.NoError(t, err)
	assert.Empty(t, none)

	_, err = Leaves(json.RawMessage(`[{"a": {"b": 1e999}}]`), "t")
	require.ErrorIs(t, err, number.ErrRange)
	assert.ErrorContains(t, err, "t.a.b: ")

	_, err = Leaves(json.RawMessage(`{"a": 1}`), "t")
	assert.Error(t, err, "the collection is an array")
}

func TestTimeLayout(t *testing.T) {
	// The document's lastChanged example.
	at, err := time.Parse(TimeLayout, "12 Jan 2018 12:00")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2018, time.January, 12, 12, 0, 0, 0, time.UTC), at)
	assert.Equal(t, "12 Jan 2018 12:00", at.Format(TimeLayout))
}

func TestDocumentJSON(t *testing.T) {
	// The document's example of GET /api/deploymentmetrics/custom.
	example := `{"tag": "custom", "metrics": [{"bla": "3"}], "lastChanged": "12 Jan 2018 12:00"}`
	var doc Document
	require.NoError(t, json.Unmarshal([]byte(example), &doc))
	assert.Equal(t, "custom", doc.Tag)
	assert.Equal(t, "12 Jan 2018 12:00", doc.LastChanged)
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	assert.JSONEq(t, example, string(out))
}
