package aggregation

import (
	"fmt"
	"strings"
)

// Func selects which statistic of a State is reported. The zero value is not
// valid so that an unset config field is detectable.
type Func uint8

// Aggregation functions.
const (
	Sum     Func = iota + 1 // sum of values
	Count                   // number of accepted data points (values are ignored)
	Min                     // smallest value
	Max                     // largest value
	First                   // value with the earliest timestamp (ties: earliest arrival)
	Last                    // value with the latest timestamp (ties: latest arrival)
	Average                 // weighted mean sum(v*w)/sum(w); weight 1 when none is given
)

// Funcs lists every valid Func.
var Funcs = [...]Func{Sum, Count, Min, Max, First, Last, Average}

var funcNames = [...]string{"", "sum", "count", "min", "max", "first", "last", "average"}

// Valid reports whether f is one of the defined functions.
func (f Func) Valid() bool { return f >= Sum && f <= Average }

// String returns the canonical lower-case name accepted by ParseFunc.
func (f Func) String() string {
	if f.Valid() {
		return funcNames[f]
	}
	return fmt.Sprintf("Func(%d)", uint8(f))
}

// IsSum reports whether the function's output is an OpenTelemetry delta Sum
// (Sum, Count: additive across windows, so re-aggregating them downstream is
// meaningful) rather than a Gauge (Min, Max, First, Last, Average: a
// per-window statistic that must not be added across windows).
func (f Func) IsSum() bool { return f == Sum || f == Count }

// ParseFunc parses the bundle's name of a function, as configs and metric
// metadata write it: sum, count, min, max, first, last, average (alias avg),
// in any case. Vendors' names map in their wire packages
// (internal/wire/threatconnect.Func).
func ParseFunc(s string) (Func, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "sum":
		return Sum, nil
	case "count":
		return Count, nil
	case "min":
		return Min, nil
	case "max":
		return Max, nil
	case "first":
		return First, nil
	case "last":
		return Last, nil
	case "average", "avg":
		return Average, nil
	}
	return 0, fmt.Errorf("aggregation: unknown function %q (want sum|count|min|max|first|last|average|avg)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (f Func) MarshalText() ([]byte, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("aggregation: cannot marshal invalid function %d", uint8(f))
	}
	return []byte(funcNames[f]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler so Func can be used
// directly in collector (YAML/mapstructure) configs.
func (f *Func) UnmarshalText(b []byte) error {
	v, err := ParseFunc(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}
