// Package number parses the numbers that the vendor APIs take as values,
// strictly: a JSON number, or a string holding exactly one. Go's own
// ParseFloat also reads hexadecimal ("0x1p4"), digit separators ("1_000"),
// "Inf" and "NaN", which the vendors' servers refuse, so this package does
// too.
package number // import "github.com/custommetrics/bundle/internal/wire/number"

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrSyntax: the text is not a decimal number in JSON's grammar.
var ErrSyntax = errors.New("not a decimal number")

// ErrRange: the number is beyond ±1.8e308 (float64).
var ErrRange = errors.New("number out of range")

// Parse reads s as a decimal number in JSON's grammar
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) and returns its float64
// value (rounded to nearest). Anything else, and numbers whose magnitude
// rounds beyond the largest float64, is an error.
func Parse(s string) (float64, error) {
	if !valid(s) {
		return 0, fmt.Errorf("%q is %w", s, ErrSyntax)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s: %w", s, ErrRange)
	}
	return v, nil
}

// ParseJSON reads a JSON value that is a number, or a string holding one
// (several vendors document "value": "1").
func ParseJSON(raw json.RawMessage) (float64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%s is %w", raw, ErrSyntax)
		}
		return Parse(s)
	}
	return Parse(string(raw))
}

// valid reports whether s is a number in JSON's grammar.
func valid(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
