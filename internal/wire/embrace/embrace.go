// Package embrace holds the wire format of Embrace's Custom Metrics API (v1):
// derived-metric definitions per app (a base metric, a filter tree, group-by
// attributes and time granularities). The receiver stores them; the aggregate
// processor reads them from the definitions registry (kind
// definitions.KindEmbraceMetric) and computes them.
package embrace // import "github.com/custommetrics/bundle/internal/wire/embrace"

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/filtertree"
)

// Time granularities, in the API's spelling.
const (
	GranularityFiveMinute = "five_minute"
	GranularityHourly     = "hourly"
	GranularityDaily      = "daily"
)

// Granularities lists the accepted granularities; DefaultGranularity is used when none is given.
var (
	Granularities      = []string{GranularityFiveMinute, GranularityHourly, GranularityDaily}
	DefaultGranularity = GranularityHourly
)

// windows are the calendar windows of Granularities, in the same order.
var windows = []calendar.Interval{calendar.FiveMinutes, calendar.Hour, calendar.Day}

// Window returns the calendar window of granularity g, one of Granularities
// exactly as the API spells it; ok is false for anything else.
func Window(g string) (iv calendar.Interval, ok bool) {
	if i := slices.Index(Granularities, g); i >= 0 {
		return windows[i], true
	}
	return 0, false
}

// CustomMetric is a custom metric definition as the API shows it.
type CustomMetric struct {
	CustomMetricID  string            `json:"custom_metric_id"`
	AppID           string            `json:"app_id"`
	Name            string            `json:"name"`
	Metric          string            `json:"metric"`
	Filters         filtertree.Filter `json:"filters"`
	GroupBy         []string          `json:"group_by"`
	TimeGranularity []string          `json:"time_granularity"`
}

// Windows returns the calendar windows m is computed in: one per
// time_granularity, in order, without repeats; DefaultGranularity's when it
// lists none (the document: "by default hourly is turned on").
func (m CustomMetric) Windows() ([]calendar.Interval, error) {
	grans := m.TimeGranularity
	if len(grans) == 0 {
		grans = []string{DefaultGranularity}
	}
	var ivs []calendar.Interval
	for _, g := range grans {
		iv, ok := Window(g)
		if !ok {
			return nil, errGranularity(g)
		}
		if !slices.Contains(ivs, iv) {
			ivs = append(ivs, iv)
		}
	}
	return ivs, nil
}

func errGranularity(g string) error {
	return fmt.Errorf("time_granularity: %q is not one of %s", g, strings.Join(Granularities, ", "))
}

// ListResponse is the body of GET .../custom-metrics.
type ListResponse struct {
	Results []CustomMetric `json:"results"`
}

// ErrorBody is the error body of every failure.
type ErrorBody struct {
	Message string `json:"message"`
}

// Error messages, taken from the document's status table.
const (
	MsgForbidden     = "you don't have access to this app id"
	MsgUnauthorized  = "you don't have access to this app id: missing or unknown token"
	MsgNotFound      = "custom metric doesn't exist"
	MsgConflict      = "custom metric already exists"
	MsgInternal      = "we had an internal error, please try again later"
	MsgEmptyAppID    = "app_id is empty"
	MsgUnknownMetric = "name of the metric doesn't exist"
)

// BaseMetric is a metric that definitions may derive from, with the
// attribute keys that may be filtered and grouped on.
type BaseMetric struct {
	Name       string
	Attributes []string
}

// DocumentedBaseMetrics is the document's table of supported metrics.
var DocumentedBaseMetrics = []BaseMetric{{Name: "sessions_total", Attributes: []string{"app_version", "os_version"}}}

// NamePattern is what a custom metric name may be: it becomes the emitted
// metric's name (OpenTelemetry instrument-name syntax) and a URL path segment.
var NamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,254}$`)

// AppIDPattern is what an app ID may be.
var AppIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)

type createBody struct {
	Name            *string         `json:"name"`
	Metric          *string         `json:"metric"`
	GroupBy         []string        `json:"group_by"`
	Filters         json.RawMessage `json:"filters"`
	TimeGranularity []string        `json:"time_granularity"`
}

// ParseCreate parses and validates a create body for appID against the
// allowed base metrics. The ID is left empty.
func ParseCreate(body []byte, appID string, bases []BaseMetric) (CustomMetric, error) {
	var b createBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return CustomMetric{}, fmt.Errorf("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return CustomMetric{}, errors.New("invalid JSON body: trailing data")
	}
	m := CustomMetric{AppID: appID}
	if b.Name == nil || *b.Name == "" {
		return m, errors.New("name is required")
	}
	if !NamePattern.MatchString(*b.Name) {
		return m, fmt.Errorf("name %q is invalid: it must start with a letter and hold only letters, digits, '_', '.' and '-' (at most 255)", *b.Name)
	}
	m.Name = *b.Name
	if b.Metric == nil || *b.Metric == "" {
		return m, errors.New("metric is required")
	}
	var base *BaseMetric
	for i := range bases {
		if bases[i].Name == *b.Metric {
			base = &bases[i]
		}
	}
	if base == nil {
		names := make([]string, len(bases))
		for i, bm := range bases {
			names[i] = bm.Name
		}
		return m, fmt.Errorf("%s: %q (supported: %s)", MsgUnknownMetric, *b.Metric, strings.Join(names, ", "))
	}
	m.Metric = base.Name
	allowed := map[string]bool{}
	for _, a := range base.Attributes {
		allowed[a] = true
	}
	m.GroupBy = []string{}
	seen := map[string]bool{}
	for _, g := range b.GroupBy {
		if !allowed[g] {
			return m, fmt.Errorf("group_by: %q is not an attribute of %s (%s)", g, base.Name, strings.Join(base.Attributes, ", "))
		}
		if seen[g] {
			return m, fmt.Errorf("group_by: %q is listed twice", g)
		}
		seen[g] = true
		m.GroupBy = append(m.GroupBy, g)
	}
	f, err := filtertree.Parse(b.Filters, filtertree.Options{AllowedKeys: allowed})
	if err != nil {
		return m, err
	}
	m.Filters = *f
	if len(b.TimeGranularity) == 0 {
		m.TimeGranularity = []string{DefaultGranularity}
	} else {
		seen := map[string]bool{}
		for _, g := range b.TimeGranularity {
			if _, ok := Window(g); !ok {
				return m, errGranularity(g)
			}
			if seen[g] {
				return m, fmt.Errorf("time_granularity: %q is listed twice", g)
			}
			seen[g] = true
			m.TimeGranularity = append(m.TimeGranularity, g)
		}
	}
	return m, nil
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// IDLength is the length of a custom_metric_id, as in the document's examples.
const IDLength = 7

// NewID returns a random custom_metric_id: 7 characters of [A-Za-z0-9].
func NewID() string {
	b := make([]byte, IDLength)
	n := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		r, err := rand.Int(rand.Reader, n)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = idAlphabet[r.Int64()]
	}
	return string(b)
}
