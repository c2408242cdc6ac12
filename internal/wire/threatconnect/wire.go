package threatconnect // import "github.com/custommetrics/bundle/internal/wire/threatconnect"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/wire/isodate"
	"github.com/custommetrics/bundle/internal/wire/number"
)

// MetricConfig is a custom metric definition as the API shows it.
type MetricConfig struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	DataType    string `json:"dataType"`
	Interval    string `json:"interval"`
	KeyedValues bool   `json:"keyedValues"`
	Description string `json:"description,omitempty"`
}

// DataTypes and Intervals are the values the API accepts, in its own spelling.
var (
	DataTypes = []string{"Sum", "Count", "Min", "Max", "First", "Last", "Average"}
	Intervals = []string{"Hourly", "Daily", "Weekly", "Monthly", "Yearly"}
)

// funcs and windows are the aggregation functions of DataTypes and the
// calendar windows of Intervals, in the same order: the one place that maps
// ThreatConnect's spellings to the bundle's own types.
var (
	funcs   = []aggregation.Func{aggregation.Sum, aggregation.Count, aggregation.Min, aggregation.Max, aggregation.First, aggregation.Last, aggregation.Average}
	windows = []calendar.Interval{calendar.Hour, calendar.Day, calendar.Week, calendar.Month, calendar.Year}
)

// Window returns the calendar window of interval, one of Intervals as a
// stored MetricConfig spells it; ok is false for anything else.
func Window(interval string) (iv calendar.Interval, ok bool) {
	return pick(Intervals, windows, interval)
}

// IntervalOf returns ThreatConnect's name of the calendar window iv; ok is
// false when ThreatConnect has no such interval (5m).
func IntervalOf(iv calendar.Interval) (name string, ok bool) {
	return pick(windows, Intervals, iv)
}

// Func returns the aggregation function of dataType, one of DataTypes as a
// stored MetricConfig spells it (exactly: ParseCreate stores that spelling);
// ok is false for anything else.
func Func(dataType string) (fn aggregation.Func, ok bool) {
	return pick(DataTypes, funcs, dataType)
}

// FuncFold is Func for a dataType from another server's answer, matched
// regardless of case (ParseCreate accepts any case too).
func FuncFold(dataType string) (fn aggregation.Func, ok bool) {
	c, ok := canonical(dataType, DataTypes)
	if !ok {
		return fn, false
	}
	return Func(c)
}

// DataType returns ThreatConnect's name of the aggregation function fn; ok
// is false for an invalid fn.
func DataType(fn aggregation.Func) (name string, ok bool) {
	return pick(funcs, DataTypes, fn)
}

// pick returns the element of to at the index of k in from.
func pick[K comparable, V any](from []K, to []V, k K) (v V, ok bool) {
	for i, f := range from {
		if f == k {
			return to[i], true
		}
	}
	return v, false
}

// Envelope statuses.
const (
	StatusSuccess = "Success"
	StatusFailure = "Failure"
)

// SuccessEnvelope wraps every successful v2 answer.
type SuccessEnvelope struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}

// FailureEnvelope is the v2 error body.
type FailureEnvelope struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// ListData is the data of GET /v2/customMetrics.
type ListData struct {
	ResultCount        int            `json:"resultCount"`
	CustomMetricConfig []MetricConfig `json:"customMetricConfig"`
}

// OneData is the data of a single metric answer.
type OneData struct {
	CustomMetricConfig MetricConfig `json:"customMetricConfig"`
}

// ReturnValue is the body of POST .../data?returnValue=true.
type ReturnValue struct {
	Value float64 `json:"value"`
	Date  string  `json:"date"`
}

// DateLayout formats dates in answers: ISO 8601 in UTC, as the document's examples.
const DateLayout = "2006-01-02T15:04:05Z"

// Paging limits of ThreatConnect's v2 lists.
const (
	DefaultResultLimit = 100
	MaxResultLimit     = 500
)

// ParsePaging reads resultStart and resultLimit from a list request's query.
func ParsePaging(q url.Values) (start, limit int, err error) {
	start, limit = 0, DefaultResultLimit
	bad := ErrPaging
	if v := q.Get("resultStart"); v != "" {
		if start, err = strconv.Atoi(v); err != nil || start < 0 {
			return 0, 0, bad
		}
	}
	if v := q.Get("resultLimit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 || limit > MaxResultLimit {
			return 0, 0, bad
		}
	}
	return start, limit, nil
}

// CreateRequest is the body of POST /v2/customMetrics.
type CreateRequest struct {
	Name        string `json:"name"`
	DataType    string `json:"dataType"`
	Interval    string `json:"interval"`
	KeyedValues *bool  `json:"keyedValues"`
	Description string `json:"description"`
}

// ParseCreate decodes and validates a metric definition. Unknown fields are
// refused: a typo such as "datatype" must not silently create a Sum metric.
func ParseCreate(body []byte) (MetricConfig, error) {
	var req CreateRequest
	if err := decodeStrict(body, &req); err != nil {
		return MetricConfig{}, err
	}
	if req.Name == "" {
		return MetricConfig{}, errors.New("name is required")
	}
	if err := ValidName(req.Name); err != nil {
		return MetricConfig{}, err
	}
	dt, ok := canonical(req.DataType, DataTypes)
	if !ok {
		return MetricConfig{}, fmt.Errorf("invalid dataType %q: must be one of %s", req.DataType, strings.Join(DataTypes, ", "))
	}
	iv, ok := canonical(req.Interval, Intervals)
	if !ok {
		return MetricConfig{}, fmt.Errorf("invalid interval %q: must be one of %s", req.Interval, strings.Join(Intervals, ", "))
	}
	keyed := req.KeyedValues != nil && *req.KeyedValues
	return MetricConfig{Name: req.Name, DataType: dt, Interval: iv, KeyedValues: keyed, Description: req.Description}, nil
}

// ValidName refuses names that cannot be addressed in a URL path segment or
// that would be read as an ID (GET /v2/customMetrics/{id}).
func ValidName(name string) error {
	if len(name) > 255 {
		return errors.New("name must be at most 255 characters")
	}
	if strings.ContainsAny(name, "/?#") || strings.TrimSpace(name) != name {
		return errors.New("name must not contain '/', '?', '#' or surrounding spaces")
	}
	if _, err := strconv.ParseInt(name, 10, 64); err == nil {
		return errors.New("name must not be a number: numbers address metrics by id")
	}
	return nil
}

func canonical(s string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a, true
		}
	}
	return "", false
}

// DataPoint is one value posted to POST /v2/customMetrics/{name}/data.
type DataPoint struct {
	Name      string    // key of a keyed metric
	Value     float64   //
	Date      time.Time // in calendar's supported range when HasDate
	HasDate   bool      // false when absent: the server uses the arrival time
	Weight    float64   // 1 when absent
	HasWeight bool
}

type dataRequest struct {
	Name   *string         `json:"name"`
	Value  json.RawMessage `json:"value"`
	Date   *string         `json:"date"`
	Weight json.RawMessage `json:"weight"`
}

// Messages of ThreatConnect's own failure answers.
const (
	MsgNotFound     = "The requested resource was not found"
	MsgUnknownError = "An unknown error occurred"
)

// ParseData decodes a data body. value and weight may be JSON numbers or
// numeric strings (the document shows strings: "value": "1"); date is ISO 8601.
// valueOptional is set for Count metrics, where a missing value counts one entry.
func ParseData(body []byte, valueOptional bool) (DataPoint, error) {
	return parseData(body, valueOptional, true)
}

// parseData is ParseData; fast says whether the common shape may skip the
// reflective decoder (scanData).
func parseData(body []byte, valueOptional, fast bool) (DataPoint, error) {
	var req dataRequest
	if !fast || !scanData(body, &req) {
		req = dataRequest{}
		if err := decodeStrict(body, &req); err != nil {
			return DataPoint{}, err
		}
	}
	var p DataPoint
	if req.Name != nil {
		p.Name = *req.Name
	}
	switch {
	case len(req.Value) > 0 && string(req.Value) != "null":
		v, err := num(req.Value)
		if err != nil {
			return DataPoint{}, fmt.Errorf("invalid value: %w", err)
		}
		p.Value = v
	case valueOptional:
		p.Value = 1
	default:
		return DataPoint{}, errors.New("value is required")
	}
	p.Weight = 1
	if len(req.Weight) > 0 && string(req.Weight) != "null" {
		w, err := num(req.Weight)
		if err != nil {
			return DataPoint{}, fmt.Errorf("invalid weight: %w", err)
		}
		if w < 0 {
			// 0 is a weight: the value adds nothing to an average (the
			// aggregation refuses it where the window would have no figure).
			return DataPoint{}, errors.New("invalid weight: must not be negative")
		}
		p.Weight, p.HasWeight = w, true
	}
	if !aggregation.Accepts(p.Value, p.Weight) {
		// Both finite, but value × weight overflows: the aggregation would
		// drop the point, so it must not be acknowledged.
		return DataPoint{}, errors.New("invalid weight: value × weight is out of range")
	}
	if req.Date != nil && *req.Date != "" {
		t, err := ParseDate(*req.Date)
		if err != nil {
			return DataPoint{}, err
		}
		p.Date, p.HasDate = t, true
	}
	return p, nil
}

// num reads a JSON number or a string holding one, strictly (internal/wire/number).
func num(raw json.RawMessage) (float64, error) {
	v, err := number.ParseJSON(raw)
	if err != nil {
		return 0, fmt.Errorf("%s is not a decimal number within ±1.8e308", raw)
	}
	return v, nil
}

// ParseDate parses an ISO 8601 date in the supported range; forms without a zone are UTC.
func ParseDate(s string) (time.Time, error) { return isodate.Parse(s) }

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}
