package sleuth

import (
	"math"
	"testing"
)

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
		req, err := ParseBody(contentType, body)
		if err != nil {
			return
		}
		if v, ok := Number(req.Value); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("non-finite value accepted: %v", v)
		}
	})
}
