// Package otelmap defines how a custom-metrics value is represented in
// OpenTelemetry: the attribute and metadata keys that the receiver writes and
// the aggregate processor and exporters read. It is the single place where
// these names are spelled.
package otelmap // import "github.com/custommetrics/bundle/internal/otelmap"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Resource attributes.
const (
	// AttrAPI names the vendor API a value arrived through (threatconnect, sleuth, bigfix, ...).
	AttrAPI = "custommetrics.api"
	// AttrTenant is the tenant that owns the value's definition; absent for the default tenant.
	AttrTenant = "custommetrics.tenant"
	// AttrLaunchDarklyProject names the LaunchDarkly project whose metric a
	// value belongs to (metric keys are unique per project only).
	AttrLaunchDarklyProject = "launchdarkly.project_key"
)

// Data point attributes.
const (
	// AttrKey is the key of a keyed metric (ThreatConnect keyedValues).
	AttrKey = "custommetrics.key"
	// AttrWeight is the weight of a value of a weighted average; absent means 1.
	// It is not part of a series' identity.
	AttrWeight = "custommetrics.weight"
)

// Anomaly processor outputs. Attributes under AnomalyAttrPrefix annotate a
// point; they are never part of a series' identity.
const (
	AnomalyAttrPrefix   = "anomaly."
	AttrAnomalyFlag     = "anomaly.flag"
	AttrAnomalyScore    = "anomaly.score"
	AttrAnomalyExpected = "anomaly.expected"
	AttrAnomalyLower    = "anomaly.lower"
	AttrAnomalyUpper    = "anomaly.upper"
	// AnomalyScoreSuffix and AnomalyFlagSuffix name the gauges emitted per scored metric.
	AnomalyScoreSuffix = ".anomaly.score"
	AnomalyFlagSuffix  = ".anomaly.flag"
)

// Metric metadata keys (pmetric.Metric.Metadata): how the definition asks the
// values to be aggregated. They travel with the metric, not its points, so
// backends do not split series by them.
const (
	MetaAggregation = "custommetrics.aggregation" // sum, count, min, max, first, last, average
	MetaInterval    = "custommetrics.interval"    // 5m, hour, day, week, month, year (calendar.Interval.String)
	MetaKeyed       = "custommetrics.keyed"       // bool
	// MetaWindow marks the aggregate processor's output: each data point is
	// the figure of the window [StartTimestamp, Timestamp), which may start
	// at 0 (1970-01-01) or before it (two's complement). Its value says
	// which figure: WindowRunning, WindowClosed or WindowRestatement.
	MetaWindow = "custommetrics.window"
)

// Values of MetaWindow.
const (
	WindowRunning     = "running"     // the window is open: its figure may still change
	WindowClosed      = "closed"      // the window's closing figure
	WindowRestatement = "restatement" // a closed window's new figure after a late value
)

// ScopeName is the instrumentation scope of values produced by the receiver.
const ScopeName = "github.com/custommetrics/bundle/receiver/custommetricsreceiver"

// Definition is how a metric asks to be aggregated; the zero value asks nothing.
type Definition struct {
	Aggregation string // e.g. "sum"; empty when the definition does not say
	Interval    string // e.g. "hour"
	Keyed       bool
	// DeltaSum makes the values delta sum points (increments); otherwise gauges.
	DeltaSum bool
}

// Value is one accepted value.
type Value struct {
	Key       string // keyed metrics only
	Value     float64
	Time      pcommon.Timestamp
	Weight    float64
	HasWeight bool
}

// Batch builds the pmetric.Metrics for values of one API and tenant.
type Batch struct {
	md     pmetric.Metrics
	scope  pmetric.MetricSlice
	points int
}

// NewBatch starts a batch for api and tenant.
func NewBatch(api, tenant, scopeVersion string) *Batch {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(AttrAPI, api)
	if tenant != "" {
		rm.Resource().Attributes().PutStr(AttrTenant, tenant)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(ScopeName)
	sm.Scope().SetVersion(scopeVersion)
	return &Batch{md: md, scope: sm.Metrics()}
}

// Add appends a metric named name, with unit and definition, holding values.
func (b *Batch) Add(name, unit string, def Definition, values ...Value) {
	m := b.scope.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	if def.Aggregation != "" {
		m.Metadata().PutStr(MetaAggregation, def.Aggregation)
	}
	if def.Interval != "" {
		m.Metadata().PutStr(MetaInterval, def.Interval)
	}
	if def.Aggregation != "" || def.Keyed {
		m.Metadata().PutBool(MetaKeyed, def.Keyed)
	}
	var dps pmetric.NumberDataPointSlice
	if def.DeltaSum {
		s := m.SetEmptySum()
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		s.SetIsMonotonic(false) // increments may be negative
		dps = s.DataPoints()
	} else {
		dps = m.SetEmptyGauge().DataPoints()
	}
	dps.EnsureCapacity(len(values))
	for _, v := range values {
		dp := dps.AppendEmpty()
		dp.SetDoubleValue(v.Value)
		ts := v.Time
		if ts == 0 {
			// OTLP reads a timestamp of 0 as "unset" (the aggregate processor
			// then uses the arrival time). 1970-01-01T00:00:00Z exactly goes
			// out one nanosecond later, which lies in the same window of
			// every interval: window bounds are whole seconds.
			ts = 1
		}
		dp.SetTimestamp(ts)
		if def.Keyed {
			dp.Attributes().PutStr(AttrKey, v.Key)
		}
		if v.HasWeight {
			dp.Attributes().PutDouble(AttrWeight, v.Weight)
		}
	}
	b.points += len(values)
}

// Metrics returns the built metrics and their number of data points.
func (b *Batch) Metrics() (pmetric.Metrics, int) { return b.md, b.points }
