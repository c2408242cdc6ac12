package number

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]float64{
		"0": 0, "-0": 0, "1": 1, "-12.5": -12.5, "1e3": 1000, "1E+3": 1000, "2.5e-1": 0.25,
		"1.7976931348623157e308": 1.7976931348623157e308, "4.9e-324": 4.9e-324, "1e-400": 0,
	} {
		got, err := Parse(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{
		"", "-", "+1", "01", "1.", ".5", "1e", "1e+", "0x1p4", "0x10", "1_000", "Inf", "-Inf", "NaN", "infinity",
		" 1", "1 ", "1,5", "١", "1.5.5", "--1", "1e5e5",
	} {
		_, err := Parse(s)
		assert.ErrorIs(t, err, ErrSyntax, "%q", s)
	}
	for _, s := range []string{"1e309", "-1e309", "2e308"} {
		_, err := Parse(s)
		assert.ErrorIs(t, err, ErrRange, s)
	}
}

func TestParseJSON(t *testing.T) {
	for raw, want := range map[string]float64{`1`: 1, `"1"`: 1, `"-2.5e1"`: -25, `"\u0031"`: 1} {
		got, err := ParseJSON(json.RawMessage(raw))
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
	}
	for _, raw := range []string{`"0x1p4"`, `"1_000"`, `"NaN"`, `""`, `" 1"`, `true`, `null`, `"1`, `[1]`} {
		_, err := ParseJSON(json.RawMessage(raw))
		assert.Error(t, err, raw)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "-0.5e-3", "0x1p4", "1_000", "NaN", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		// What Parse takes, encoding/json takes as a number with the same value.
		var j float64
		require.NoError(t, json.Unmarshal([]byte(s), &j), "%q", s)
		require.Equal(t, j, v)
	})
}
