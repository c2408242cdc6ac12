// Package launchdarkly holds the wire format of LaunchDarkly's metrics API
// (v2) and of the analytics events its server-side SDKs send, shared by the
// receiver (which serves both) and the exporter.
package launchdarkly // import "github.com/custommetrics/bundle/internal/wire/launchdarkly"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/custommetrics/bundle/internal/aggregation"
)

// Metric kinds.
const (
	KindPageview = "pageview"
	KindClick    = "click"
	KindCustom   = "custom"
)

// URL matcher kinds.
const (
	URLExact     = "exact"
	URLCanonical = "canonical"
	URLSubstring = "substring"
	URLRegex     = "regex"
)

// Success criteria and unit aggregation types.
const (
	HigherThanBaseline = "HigherThanBaseline"
	LowerThanBaseline  = "LowerThanBaseline"
	AggregationAverage = "average"
	AggregationSum     = "sum"
)

// Analysis types.
const (
	AnalysisMean       = "mean"
	AnalysisPercentile = "percentile"
)

// URLMatcher is one entry of a pageview or click metric's urls.
type URLMatcher struct {
	Kind      string `json:"kind"`
	URL       string `json:"url,omitempty"`
	Substring string `json:"substring,omitempty"`
	Pattern   string `json:"pattern,omitempty"`
}

// EventDefault says what a unit without events counts as.
type EventDefault struct {
	Disabled *bool    `json:"disabled,omitempty"`
	Value    *float64 `json:"value,omitempty"`
}

// Fields are a metric's user-set fields: a POST body (MetricPost), and what
// PATCH may change.
type Fields struct {
	Key                 string        `json:"key"`
	Name                *string       `json:"name,omitempty"`
	Description         *string       `json:"description,omitempty"`
	Kind                string        `json:"kind"`
	Selector            *string       `json:"selector,omitempty"`
	URLs                []URLMatcher  `json:"urls,omitempty"`
	IsActive            *bool         `json:"isActive,omitempty"`
	IsNumeric           *bool         `json:"isNumeric,omitempty"`
	Unit                *string       `json:"unit,omitempty"`
	EventKey            *string       `json:"eventKey,omitempty"`
	SuccessCriteria     *string       `json:"successCriteria,omitempty"`
	Tags                []string      `json:"tags"`
	RandomizationUnits  []string      `json:"randomizationUnits,omitempty"`
	UnitAggregationType *string       `json:"unitAggregationType,omitempty"`
	AnalysisType        *string       `json:"analysisType,omitempty"`
	PercentileValue     *int32        `json:"percentileValue,omitempty"`
	EventDefault        *EventDefault `json:"eventDefault,omitempty"`
	// MaintainerID is the ID of the member who maintains the metric.
	MaintainerID *string `json:"maintainerId,omitempty"`
}

// Metric is a stored metric: its fields and what the server assigned.
type Metric struct {
	Fields
	ID           string    `json:"_id"`
	VersionID    string    `json:"_versionId"`
	Project      string    `json:"_project"`
	CreationDate int64     `json:"_creationDate"` // unix ms
	LastModified time.Time `json:"_lastModified"`
	Version      int32     `json:"_version"`
}

// Numeric reports whether values of the metric are numbers (custom numeric metrics).
func (m Metric) Numeric() bool {
	return m.Kind == KindCustom && m.IsNumeric != nil && *m.IsNumeric
}

// Func is how a metric's values add up in a window: a numeric metric by its
// unitAggregationType (average unless "sum"); conversions, page views and
// clicks are counted, as sums of 1.
func (m Metric) Func() aggregation.Func {
	if m.Numeric() && (m.UnitAggregationType == nil || *m.UnitAggregationType != AggregationSum) {
		return aggregation.Average
	}
	return aggregation.Sum
}

// Active reports whether a pageview or click metric records events (isActive, default true).
func (m Metric) Active() bool { return m.IsActive == nil || *m.IsActive }

// KeyPattern is what metric and project keys may be.
var KeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._\-]{0,255}$`)

// ParsePost parses and validates a POST body. name defaults to the key.
// Members of the representation that a client cannot set (ReadOnly) are
// ignored, as LaunchDarkly ignores them, so a metric read from one project
// can be posted to another as it is; any other unknown member is refused.
func ParsePost(body []byte) (Fields, error) {
	var f Fields
	var members map[string]json.RawMessage
	if err := decodeStrict(body, &members); err != nil {
		return f, err
	}
	for m := range ReadOnly {
		delete(members, m)
	}
	rest, err := json.Marshal(members)
	if err != nil {
		return f, fmt.Errorf("invalid request body: %v", err)
	}
	if err := decodeStrict(rest, &f); err != nil {
		return f, err
	}
	if f.Name == nil && f.Key != "" {
		name := f.Key
		f.Name = &name
	}
	if f.Tags == nil {
		f.Tags = []string{}
	}
	return f, f.Validate()
}

// DecodeFields decodes fields strictly (unknown members are refused) without validating them.
func DecodeFields(body []byte) (Fields, error) {
	var f Fields
	err := decodeStrict(body, &f)
	if f.Tags == nil {
		f.Tags = []string{}
	}
	return f, err
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid request body: trailing data after the JSON value")
	}
	return nil
}

// Validate checks the fields as a whole: what each kind requires, and every enumeration.
func (f *Fields) Validate() error {
	if f.Key == "" {
		return errors.New("key is required")
	}
	if !KeyPattern.MatchString(f.Key) {
		return fmt.Errorf("key %q is invalid: use letters, digits, '.', '_' and '-' (at most 256)", f.Key)
	}
	if f.Name == nil || strings.TrimSpace(*f.Name) == "" {
		return errors.New("name must not be empty")
	}
	switch f.Kind {
	case KindPageview, KindClick:
		if len(f.URLs) == 0 {
			return fmt.Errorf("urls is required for %s metrics", f.Kind)
		}
		for i, u := range f.URLs {
			if err := u.Validate(); err != nil {
				return fmt.Errorf("urls[%d]: %v", i, err)
			}
		}
		if f.Kind == KindClick && (f.Selector == nil || strings.TrimSpace(*f.Selector) == "") {
			return errors.New("selector is required for click metrics")
		}
	case KindCustom:
		if f.EventKey == nil || *f.EventKey == "" {
			return errors.New("eventKey is required for custom metrics")
		}
		if f.IsNumeric != nil && *f.IsNumeric && f.SuccessCriteria == nil {
			return errors.New("successCriteria is required for custom numeric metrics")
		}
	case "":
		return errors.New("kind is required")
	default:
		return fmt.Errorf("kind %q is invalid: must be one of pageview, click, custom", f.Kind)
	}
	if f.SuccessCriteria != nil && *f.SuccessCriteria != HigherThanBaseline && *f.SuccessCriteria != LowerThanBaseline {
		return fmt.Errorf("successCriteria %q is invalid: must be %s or %s", *f.SuccessCriteria, HigherThanBaseline, LowerThanBaseline)
	}
	if f.UnitAggregationType != nil && *f.UnitAggregationType != AggregationAverage && *f.UnitAggregationType != AggregationSum {
		return fmt.Errorf("unitAggregationType %q is invalid: must be average or sum", *f.UnitAggregationType)
	}
	if f.PercentileValue != nil && (*f.PercentileValue < 0 || *f.PercentileValue > 100) {
		return errors.New("percentileValue must be between 0 and 100")
	}
	if f.AnalysisType != nil && *f.AnalysisType != AnalysisMean && *f.AnalysisType != AnalysisPercentile {
		return fmt.Errorf("analysisType %q is invalid: must be %s or %s", *f.AnalysisType, AnalysisMean, AnalysisPercentile)
	}
	if f.AnalysisType != nil && *f.AnalysisType == AnalysisPercentile && f.PercentileValue == nil {
		return errors.New("percentileValue is required when analysisType is percentile")
	}
	if f.EventDefault != nil && f.EventDefault.Value != nil && (math.IsNaN(*f.EventDefault.Value) || math.IsInf(*f.EventDefault.Value, 0)) {
		return errors.New("eventDefault.value must be a finite number")
	}
	for i, t := range f.Tags {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("tags[%d] must not be empty", i)
		}
	}
	if f.MaintainerID != nil && strings.TrimSpace(*f.MaintainerID) == "" {
		return errors.New("maintainerId must not be empty")
	}
	for i, u := range f.RandomizationUnits {
		if u == "" {
			return fmt.Errorf("randomizationUnits[%d] must not be empty", i)
		}
	}
	return nil
}

// Validate checks one URL matcher.
func (u URLMatcher) Validate() error {
	switch u.Kind {
	case URLExact, URLCanonical:
		if u.URL == "" {
			return fmt.Errorf("url is required for kind %q", u.Kind)
		}
	case URLSubstring:
		if u.Substring == "" {
			return errors.New(`substring is required for kind "substring"`)
		}
	case URLRegex:
		if u.Pattern == "" {
			return errors.New(`pattern is required for kind "regex"`)
		}
		if _, err := regexp.Compile(u.Pattern); err != nil {
			return fmt.Errorf("pattern is not a valid regular expression: %v", err)
		}
	default:
		return fmt.Errorf("kind %q is invalid: must be one of exact, canonical, substring, regex", u.Kind)
	}
	return nil
}

// Match reports whether a page URL matches: exact compares whole URLs,
// canonical ignores the query string, the fragment and a trailing '/',
// substring looks for the substring, regex searches the pattern.
func (u URLMatcher) Match(pageURL string) bool {
	switch u.Kind {
	case URLExact:
		return pageURL == u.URL
	case URLCanonical:
		return canonical(pageURL) == canonical(u.URL)
	case URLSubstring:
		return strings.Contains(pageURL, u.Substring)
	case URLRegex:
		re, err := regexp.Compile(u.Pattern)
		return err == nil && re.MatchString(pageURL)
	}
	return false
}

func canonical(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return strings.TrimSuffix(u, "/")
}

// MatchesURL reports whether any of the metric's URL matchers matches.
func (m Metric) MatchesURL(pageURL string) bool {
	for _, u := range m.URLs {
		if u.Match(pageURL) {
			return true
		}
	}
	return false
}

// Link is an entry of _links.
type Link struct {
	Href string `json:"href"`
	Type string `json:"type"`
}

// Modification is lastModified.
type Modification struct {
	Date string `json:"date"`
}

// MetricRep is the representation of one metric (GET one, POST, PATCH).
type MetricRep struct {
	ID                  string          `json:"_id"`
	VersionID           string          `json:"_versionId"`
	Key                 string          `json:"key"`
	Name                string          `json:"name"`
	Kind                string          `json:"kind"`
	AttachedFlagCount   int             `json:"_attachedFlagCount"`
	Links               map[string]Link `json:"_links"`
	Tags                []string        `json:"tags"`
	CreationDate        int64           `json:"_creationDate"`
	LastModified        *Modification   `json:"lastModified,omitempty"`
	MaintainerID        *string         `json:"maintainerId,omitempty"`
	Description         *string         `json:"description,omitempty"`
	IsNumeric           *bool           `json:"isNumeric,omitempty"`
	SuccessCriteria     *string         `json:"successCriteria,omitempty"`
	Unit                *string         `json:"unit,omitempty"`
	EventKey            *string         `json:"eventKey,omitempty"`
	RandomizationUnits  []string        `json:"randomizationUnits,omitempty"`
	UnitAggregationType *string         `json:"unitAggregationType,omitempty"`
	AnalysisType        *string         `json:"analysisType,omitempty"`
	PercentileValue     *int32          `json:"percentileValue,omitempty"`
	EventDefault        *EventDefault   `json:"eventDefault,omitempty"`
	IsActive            *bool           `json:"isActive,omitempty"`
	Version             *int32          `json:"_version,omitempty"`
	Selector            *string         `json:"selector,omitempty"`
	URLs                []URLMatcher    `json:"urls,omitempty"`
}

// MetricCollectionRep is the body of the list.
type MetricCollectionRep struct {
	Items      []MetricRep     `json:"items"`
	Links      map[string]Link `json:"_links"`
	TotalCount int             `json:"totalCount"`
}

// Rep builds the representation of m; base is the collection path
// ("/api/v2/metrics/<project>", with any path prefix). listing leaves out what
// LaunchDarkly's listing representation does not carry (isActive, _version,
// selector, urls).
func Rep(m Metric, base string, listing bool) MetricRep {
	name := m.Key
	if m.Name != nil {
		name = *m.Name
	}
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	r := MetricRep{
		ID: m.ID, VersionID: m.VersionID, Key: m.Key, Name: name, Kind: m.Kind,
		Links: map[string]Link{
			"parent": {Href: base, Type: "application/json"},
			"self":   {Href: base + "/" + m.Key, Type: "application/json"},
		},
		Tags: tags, CreationDate: m.CreationDate,
		LastModified: &Modification{Date: m.LastModified.UTC().Format(time.RFC3339Nano)}, MaintainerID: m.MaintainerID,
		Description: m.Description, IsNumeric: m.IsNumeric, SuccessCriteria: m.SuccessCriteria, Unit: m.Unit,
		EventKey: m.EventKey, RandomizationUnits: m.RandomizationUnits, UnitAggregationType: m.UnitAggregationType,
		AnalysisType: m.AnalysisType, PercentileValue: m.PercentileValue, EventDefault: m.EventDefault,
	}
	if !listing {
		v := m.Version
		r.Version = &v
		r.Selector = m.Selector
		r.URLs = m.URLs
		r.IsActive = m.IsActive
		if r.IsActive == nil && (m.Kind == KindPageview || m.Kind == KindClick) {
			active := true
			r.IsActive = &active
		}
	}
	return r
}

// ReadOnly are the members of LaunchDarkly's metric representation
// (MetricRep) that are not in MetricPost: the server sets them. Some are
// never filled here (_site, _access, _maintainer, experiments, ...: no
// sites, members, experiments or flags live here).
var ReadOnly = map[string]bool{
	"_id": true, "_versionId": true, "_links": true, "_creationDate": true, "lastModified": true,
	"_version": true, "_attachedFlagCount": true, "_site": true, "_access": true, "_maintainer": true,
	"experimentCount": true, "metricGroupCount": true, "experiments": true, "metricGroups": true,
	"_attachedFeatures": true,
}

// ServerManaged are the representation's members that a PATCH cannot
// change: the read-only ones, and key and kind, which are set at creation.
var ServerManaged = func() map[string]bool {
	m := map[string]bool{"key": true, "kind": true}
	for k := range ReadOnly {
		m[k] = true
	}
	return m
}()

// ErrorRep is LaunchDarkly's error body.
type ErrorRep struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes and their usual messages.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeConflict          = "conflict"
	CodeOptimisticLocking = "optimistic_locking_error"
	CodeTooLarge          = "request_entity_too_large"
	CodeRateLimited       = "rate_limited"
	CodeInternal          = "internal_server_error"
	CodeUnavailable       = "service_unavailable"

	MsgUnauthorized = "invalid key"
	MsgForbidden    = "Forbidden. Access to the requested resource was denied."
	MsgNotFound     = "Invalid resource identifier"
	MsgRateLimited  = "You've exceeded the API rate limit. Try again later."
	MsgConflictKey  = "A metric with that key already exists"
)
