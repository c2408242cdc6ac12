package custommetricsexporter // import "github.com/custommetrics/bundle/exporter/custommetricsexporter"

import (
	"context"
	"errors"
	"fmt"
	"github.com/custommetrics/bundle/internal/storageclient"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/otelmap"
)

// pointRef addresses one data point of a batch.
type pointRef struct{ r, s, m, p int }

// point is one number data point of a batch, read once.
type point struct {
	ref    pointRef
	metric string
	value  float64
	ts     pcommon.Timestamp // the point's time (window end for window figures)
	start  pcommon.Timestamp // window start of a window figure; 0 for raw values
	attrs  pcommon.Map
	// figure is set for window figures of the aggregate processor.
	figure      bool
	aggregation string
	interval    string
}

// outcome records, per point, that it needs no more sending.
type outcome struct {
	done map[pointRef]bool
	// permanent collects errors of points that can never be sent.
	permanent []error
}

func (o *outcome) finish(refs ...pointRef) {
	for _, r := range refs {
		o.done[r] = true
	}
}

func (o *outcome) fail(err error, refs ...pointRef) {
	o.permanent = append(o.permanent, err)
	o.finish(refs...)
}

type customMetricsExporter struct {
	cfg    *Config
	set    exporter.Settings
	logger *zap.Logger
	client *http.Client
	now    func() time.Time

	tc     *tcForwarder
	sleuth *sleuthForwarder
	bigfix *bigfixForwarder

	// state keeps the forwarders' knowledge across restarts (config storage); nil: in memory only.
	state storage.Client
}

func newExporter(cfg *Config, set exporter.Settings) (*customMetricsExporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	e := &customMetricsExporter{cfg: cfg, set: set, logger: set.Logger, now: time.Now}
	if cfg.ThreatConnect != nil {
		e.tc = newTCForwarder(e, cfg.ThreatConnect)
	}
	if cfg.Sleuth != nil {
		e.sleuth = newSleuthForwarder(e, cfg.Sleuth)
	}
	if cfg.BigFix != nil {
		e.bigfix = newBigFixForwarder(e, cfg.BigFix)
	}
	return e, nil
}

func (e *customMetricsExporter) start(ctx context.Context, host component.Host) error {
	client, err := e.cfg.ClientConfig.ToClient(ctx, host.GetExtensions(), e.set.TelemetrySettings)
	if err != nil {
		return err
	}
	e.client = client
	if e.cfg.Storage != nil {
		if e.state, err = storageclient.Open(ctx, host, *e.cfg.Storage, component.KindExporter, e.set.ID); err != nil {
			return err
		}
	}
	return nil
}

func (e *customMetricsExporter) shutdown(ctx context.Context) error {
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.state != nil {
		return e.state.Close(ctx)
	}
	return nil
}

// push forwards one batch. Every point goes to the first mapping that matches
// it in each configured API (so one point may feed ThreatConnect, Sleuth and
// BigFix). Points that no mapping matches are ignored. When a retryable
// failure stops the batch, the error carries only the points not yet
// forwarded (consumererror.NewMetrics), so a retry does not send the same
// value twice; points refused permanently are logged and dropped.
func (e *customMetricsExporter) push(ctx context.Context, md pmetric.Metrics) error {
	if e.client == nil {
		return errors.New("custommetrics exporter: not started")
	}
	points := readPoints(md)
	if len(points) == 0 {
		return nil
	}
	// Each API records its own progress; a point is done when every API that
	// takes it is done with it.
	var outcomes []*outcome
	var apis []string
	var retryErr error
	run := func(api string, f func(context.Context, []point, *outcome) error) {
		o := &outcome{done: map[pointRef]bool{}}
		// Points an earlier attempt already forwarded to this API are done.
		var todo []point
		for _, p := range points {
			if p.sentTo(api) {
				o.done[p.ref] = true
			} else {
				todo = append(todo, p)
			}
		}
		outcomes = append(outcomes, o)
		apis = append(apis, api)
		if retryErr != nil || len(todo) == 0 {
			return // when retryErr is set, this API is tried with the retry
		}
		if err := f(ctx, todo, o); err != nil {
			retryErr = err
		}
	}
	if e.tc != nil {
		run(apiThreatConnect, e.tc.forward)
	}
	if e.sleuth != nil {
		run(apiSleuth, e.sleuth.forward)
	}
	if e.bigfix != nil {
		run(apiBigFix, e.bigfix.forward)
	}
	var perm []error
	for _, o := range outcomes {
		perm = append(perm, o.permanent...)
	}
	if len(perm) > 0 {
		e.logger.Error("Dropped values the vendor API refused permanently", zap.Int("errors", len(perm)), zap.Error(errors.Join(perm...)))
	}
	if retryErr == nil {
		if len(perm) > 0 {
			return consumererror.NewPermanent(errors.Join(perm...))
		}
		return nil
	}
	// Retry what any API has not finished. The retried points carry the APIs
	// that already have them (attribute attrSent), so those are not sent again.
	remaining := subset(md, func(r pointRef) bool {
		for _, o := range outcomes {
			if !o.done[r] {
				return true
			}
		}
		return false
	}, func(r pointRef, dp pmetric.NumberDataPoint) {
		v, ok := dp.Attributes().Get(attrSent)
		var sent pcommon.Slice
		if ok && v.Type() == pcommon.ValueTypeSlice {
			sent = v.Slice()
		} else {
			sent = dp.Attributes().PutEmptySlice(attrSent)
		}
		for i, o := range outcomes {
			if o.done[r] && !containsStr(sent, apis[i]) {
				sent.AppendEmpty().SetStr(apis[i])
			}
		}
	})
	return consumererror.NewMetrics(retryErr, remaining)
}

// readPoints lists the number data points of a batch.
func readPoints(md pmetric.Metrics) []point {
	var out []point
	rms := md.ResourceMetrics()
	for r := 0; r < rms.Len(); r++ {
		sms := rms.At(r).ScopeMetrics()
		for s := 0; s < sms.Len(); s++ {
			ms := sms.At(s).Metrics()
			for m := 0; m < ms.Len(); m++ {
				metric := ms.At(m)
				var dps pmetric.NumberDataPointSlice
				switch metric.Type() {
				case pmetric.MetricTypeGauge:
					dps = metric.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = metric.Sum().DataPoints()
				default:
					continue
				}
				agg, _ := metric.Metadata().Get(otelmap.MetaAggregation)
				iv, _ := metric.Metadata().Get(otelmap.MetaInterval)
				_, window := metric.Metadata().Get(otelmap.MetaWindow)
				for p := 0; p < dps.Len(); p++ {
					dp := dps.At(p)
					if dp.Flags().NoRecordedValue() {
						continue
					}
					pt := point{
						ref: pointRef{r, s, m, p}, metric: metric.Name(), ts: dp.Timestamp(), attrs: dp.Attributes(),
						aggregation: agg.Str(), interval: iv.Str(),
					}
					switch dp.ValueType() {
					case pmetric.NumberDataPointValueTypeDouble:
						pt.value = dp.DoubleValue()
					case pmetric.NumberDataPointValueTypeInt:
						pt.value = float64(dp.IntValue())
					default:
						continue
					}
					// The aggregate processor's window figures: metadata says how,
					// StartTimestamp is the window start, Timestamp its end.
					// Timestamps are int64 (before 1970, two's complement); a window
					// starting at 0 is one by its custommetrics.window mark.
					if start, end := int64(dp.StartTimestamp()), int64(dp.Timestamp()); pt.aggregation != "" && pt.interval != "" && (window || start != 0) && end > start {
						pt.figure = true
						pt.start = dp.StartTimestamp()
					}
					out = append(out, pt)
				}
			}
		}
	}
	return out
}

// subset copies md keeping only the number data points for which keep is true.
func subset(md pmetric.Metrics, keep func(pointRef) bool, annotate func(pointRef, pmetric.NumberDataPoint)) pmetric.Metrics {
	out := pmetric.NewMetrics()
	rms := md.ResourceMetrics()
	for r := 0; r < rms.Len(); r++ {
		rm := rms.At(r)
		var orm pmetric.ResourceMetrics
		sms := rm.ScopeMetrics()
		for s := 0; s < sms.Len(); s++ {
			sm := sms.At(s)
			var osm pmetric.ScopeMetrics
			ms := sm.Metrics()
			for m := 0; m < ms.Len(); m++ {
				metric := ms.At(m)
				var src pmetric.NumberDataPointSlice
				switch metric.Type() {
				case pmetric.MetricTypeGauge:
					src = metric.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					src = metric.Sum().DataPoints()
				default:
					continue
				}
				var idx []int
				for p := 0; p < src.Len(); p++ {
					if keep(pointRef{r, s, m, p}) {
						idx = append(idx, p)
					}
				}
				if len(idx) == 0 {
					continue
				}
				if osm == (pmetric.ScopeMetrics{}) {
					if orm == (pmetric.ResourceMetrics{}) {
						orm = out.ResourceMetrics().AppendEmpty()
						rm.Resource().CopyTo(orm.Resource())
						orm.SetSchemaUrl(rm.SchemaUrl())
					}
					osm = orm.ScopeMetrics().AppendEmpty()
					sm.Scope().CopyTo(osm.Scope())
					osm.SetSchemaUrl(sm.SchemaUrl())
				}
				om := osm.Metrics().AppendEmpty()
				om.SetName(metric.Name())
				om.SetUnit(metric.Unit())
				om.SetDescription(metric.Description())
				metric.Metadata().CopyTo(om.Metadata())
				var dst pmetric.NumberDataPointSlice
				if metric.Type() == pmetric.MetricTypeGauge {
					dst = om.SetEmptyGauge().DataPoints()
				} else {
					s := om.SetEmptySum()
					s.SetAggregationTemporality(metric.Sum().AggregationTemporality())
					s.SetIsMonotonic(metric.Sum().IsMonotonic())
					dst = s.DataPoints()
				}
				for _, p := range idx {
					dp := dst.AppendEmpty()
					src.At(p).CopyTo(dp)
					annotate(pointRef{r, s, m, p}, dp)
				}
			}
		}
	}
	return out
}

// attrSent is a data point attribute that the exporter sets on points it
// hands back for a retry: the APIs that already have the point. It lives only
// between two attempts of this exporter and is never forwarded.
const attrSent = "custommetrics.exporter.sent"

// API names, as in attrSent.
const (
	apiThreatConnect = "threatconnect"
	apiSleuth        = "sleuth"
	apiBigFix        = "bigfix"
)

func (p point) sentTo(api string) bool {
	v, ok := p.attrs.Get(attrSent)
	return ok && v.Type() == pcommon.ValueTypeSlice && containsStr(v.Slice(), api)
}

func containsStr(s pcommon.Slice, want string) bool {
	for i := 0; i < s.Len(); i++ {
		if s.At(i).Str() == want {
			return true
		}
	}
	return false
}

func (p point) String() string {
	return fmt.Sprintf("%s@%s", p.metric, p.ts.AsTime().UTC().Format(time.RFC3339))
}
