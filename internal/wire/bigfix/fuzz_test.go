package bigfix

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
		metrics, err := Metrics(body)
		if err != nil {
			return
		}
		var collection []json.RawMessage
		if err := json.Unmarshal(metrics, &collection); err != nil {
			t.Fatalf("metrics field is not a JSON array: %s", metrics)
		}
		leaves, err := Leaves(metrics, "tag")
		if err != nil {
			return // a number beyond float64: the request is refused
		}
		for _, l := range leaves {
			if math.IsNaN(l.Value) || math.IsInf(l.Value, 0) || len(l.Name) < len("tag") {
				t.Fatalf("bad leaf %+v", l)
			}
		}
	})
}
