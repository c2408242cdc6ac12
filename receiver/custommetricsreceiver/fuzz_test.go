package custommetricsreceiver

import (
	"encoding/json"
	"math"
	"testing"
)

func FuzzBigFixBody(f *testing.F) {
	for _, seed := range []string{
		`{"bla": "3"}`,
		`[{"number_of_endpoints": "5"}]`,
		`{"a": {"b": [1, "2", true, null, {"c": "x"}]}}`,
		`"just a string"`, `42`, `[]`, `<BES/>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		metrics, err := bigFixMetrics(body)
		if err != nil {
			return
		}
		var collection []json.RawMessage
		if err := json.Unmarshal(metrics, &collection); err != nil {
			t.Fatalf("metrics field is not a JSON array: %s", metrics)
		}
		leaves, err := numericLeaves(metrics, "tag")
		if err != nil {
			return // a number beyond float64: the request is refused
		}
		for _, l := range leaves {
			if math.IsNaN(l.value) || math.IsInf(l.value, 0) || len(l.name) < len("tag") {
				t.Fatalf("bad leaf %+v", l)
			}
		}
	})
}

func FuzzSleuthBody(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", "{\n  \"value\": 1.5,\n  \"api_key\": \"KEY\"\n}"},
		{"application/json", `{"value":"0.25","date":"2024-03-01T10:00:00+01:00"}`},
		{"application/x-www-form-urlencoded", "value=3&api_key=k&date=2024-03-01"},
		{"", `{"value":`},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := parseSleuthBody(contentType, body)
		if err != nil {
			return
		}
		if v, ok := sleuthNumber(req.Value); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("non-finite value accepted: %v", v)
		}
	})
}
