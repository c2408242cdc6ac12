package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
	"github.com/custommetrics/bundle/processor/aggregateprocessor/internal/metadata"
)

// target says how a matched metric is aggregated.
type target struct {
	fn   aggregation.Func
	ivs  []calendar.Interval
	keep func(string) bool
}

type compiledRule struct {
	name string
	re   *regexp.Regexp
	t    target
}

type aggProcessor struct {
	cfg    *Config
	set    processor.Settings
	logger *zap.Logger
	next   consumer.Metrics
	cal    *calendar.Calendar
	now    func() time.Time
	rules  []compiledRule
	tel    *metadata.TelemetryBuilder

	// windows holds the window states (in cluster mode only identities).
	windows *windows.Set
	client  storage.Client // with storage: the windows' store
	health  *health        // of commits, with storage or in cluster mode
	shared  *shared        // cluster mode: window states in PostgreSQL (shared.go)

	emitMu      sync.Mutex // one emitter at a time: emission order = state order
	lastRunning int64

	stopTicker chan struct{}
	tickerDone chan struct{}

	refuseLog, invalidLog, matchLog rateLimiter

	emb embraceState // Embrace derived metrics (definitions)
}

var metaKeep = func(k string) bool { return k != otelmap.AttrWeight }

func newProcessor(set processor.Settings, cfg *Config, next consumer.Metrics) (*aggProcessor, error) {
	cal, err := calendar.LoadCalendar(cfg.TimeZone)
	if err != nil {
		return nil, err
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &aggProcessor{cfg: cfg, set: set, logger: set.Logger, next: next, cal: cal, now: time.Now, tel: tel}
	p.windows = windows.New(windows.Config{
		Calendar: cal, MaxWindows: cfg.MaxSeriesWindows, MaxWindowsPerTenant: cfg.MaxSeriesWindowsPerTenant,
		AllowedLateness: cfg.AllowedLateness, Retention: cfg.RestatementRetention, CommitDelay: cfg.CommitDelay,
		Now: func() time.Time { return p.now() }, Logger: set.Logger, Committed: p.committed,
	})
	for _, r := range cfg.Rules {
		cr := compiledRule{name: r.Name, t: target{fn: r.Aggregation, ivs: slices.Clone(r.Intervals), keep: metaKeep}}
		if r.Regexp != "" {
			cr.re = regexp.MustCompile("^(?:" + r.Regexp + ")$")
		}
		if r.Attributes != nil {
			keys := slices.Clone(r.Attributes)
			cr.t.keep = func(k string) bool { return k != otelmap.AttrWeight && slices.Contains(keys, k) }
		}
		p.rules = append(p.rules, cr)
	}
	err = tel.RegisterProcessorAggregateSeriesWindowsOpenCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(p.windows.Len())
		return nil
	})
	return p, err
}

func (p *aggProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func (p *aggProcessor) Start(ctx context.Context, host component.Host) error {
	if err := p.startDefinitions(ctx, host); err != nil {
		return err
	}
	if p.cfg.Postgres != nil {
		if err := p.startShared(ctx, host); err != nil {
			return err
		}
	} else if p.cfg.Storage == nil {
		p.logger.Warn("No storage configured: window states are kept in memory only and lost on restart; " +
			"set 'storage' to a storage extension such as file_storage for durable aggregates and restatements of evicted windows.")
	} else {
		client, err := openStorage(ctx, host, *p.cfg.Storage, p.set.ID)
		if err != nil {
			return err
		}
		p.health = &health{host: host}
		if err := p.windows.Open(ctx, client.(windows.Store)); err != nil {
			_ = client.Close(ctx)
			return err
		}
		p.client = client
	}
	p.stopTicker = make(chan struct{})
	p.tickerDone = make(chan struct{})
	go p.runTicker()
	return nil
}

func (p *aggProcessor) runTicker() {
	defer close(p.tickerDone)
	t := time.NewTicker(p.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopTicker:
			return
		case <-t.C:
			if err := p.tick(context.Background(), p.now()); err != nil {
				p.logger.Warn("Emitting aggregates failed; retrying at the next check", zap.Error(err))
			}
		}
	}
}

func (p *aggProcessor) Shutdown(ctx context.Context) error {
	if p.stopTicker != nil {
		close(p.stopTicker)
		<-p.tickerDone
		p.stopTicker = nil
	}
	var errs []error
	if p.shared != nil {
		p.sharedShutdown(ctx)
	} else if p.client != nil {
		// Emit what closed; open windows are durable and resume after a restart.
		if err := p.tick(ctx, p.now()); err != nil {
			errs = append(errs, err)
		}
		p.windows.Halt()
		p.health.stop()
		errs = append(errs, p.client.Close(ctx))
		p.client = nil
	} else if p.next != nil {
		// Memory only: emit closed windows and the running figures of open
		// ones, which would otherwise be lost.
		if err := p.flushAll(ctx, p.now()); err != nil {
			errs = append(errs, err)
		}
	}
	p.tel.Shutdown()
	return errors.Join(errs...)
}

// match reports whether m is aggregated and how.
func (p *aggProcessor) match(m pmetric.Metric) (target, bool) {
	switch m.Type() {
	case pmetric.MetricTypeGauge, pmetric.MetricTypeSum:
	default:
		return target{}, false
	}
	md := m.Metadata()
	if av, ok := md.Get(otelmap.MetaAggregation); ok {
		if iv, ok := md.Get(otelmap.MetaInterval); ok {
			fn, err1 := aggregation.ParseFunc(av.AsString())
			ivl, err2 := calendar.ParseInterval(iv.AsString())
			if err1 == nil && err2 == nil {
				return target{fn: fn, ivs: singleIntervals[ivl], keep: metaKeep}, true
			}
			if p.matchLog.allow() {
				p.logger.Warn("Metric metadata asks for an unknown aggregation or interval; passing it through unaggregated",
					zap.String("metric", m.Name()), zap.Error(errors.Join(err1, err2)))
			}
		}
	}
	for i := range p.rules {
		r := &p.rules[i]
		if (r.re == nil && r.name == m.Name()) || (r.re != nil && r.re.MatchString(m.Name())) {
			return r.t, true
		}
	}
	return target{}, false
}

var singleIntervals = func() (s [int(calendar.Year) + 1][]calendar.Interval) {
	for _, iv := range calendar.Intervals {
		s[iv] = []calendar.Interval{iv}
	}
	return s
}()

func numberPoints(m pmetric.Metric) pmetric.NumberDataPointSlice {
	if m.Type() == pmetric.MetricTypeSum {
		return m.Sum().DataPoints()
	}
	return m.Gauge().DataPoints()
}

// ConsumeMetrics aggregates matched points and passes the rest on. A batch is
// counted entirely or not at all (the limit, retention and finiteness are
// checked before any state changes, and a failed commit leaves no trace), and
// it returns only once the touched windows are durable.
func (p *aggProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if answerProbe(ctx) {
		return nil
	}
	nowNs := p.now().UnixNano()
	b := p.windows.Batch(nowNs)
	defer b.Release()

	matched, invalid, err := p.resolve(b, md, nowNs, p.derivedDefs(ctx))
	if invalid > 0 {
		p.tel.ProcessorAggregatePointsInvalid.Add(ctx, int64(invalid))
		if p.invalidLog.allow() {
			p.logger.Warn("Ignoring data points with a NaN or infinite value, a NaN, infinite or negative custommetrics.weight, or a timestamp outside 1700-01-01..2199-12-31", zap.Int("points", invalid))
		}
	}
	if err == nil {
		err = b.Reserve(ctx)
	}
	if err != nil {
		p.refused(ctx, b, err)
		return err
	}
	if !matched && b.Empty() {
		return p.next.ConsumeMetrics(ctx, md)
	}

	// Pass the unmatched (and, with keep_raw, the raw) metrics on first: if
	// that fails nothing was aggregated, so the sender's retry counts once.
	// Base metrics of derived metrics only are not matched: they pass on.
	if matched && !p.cfg.KeepRaw {
		p.removeMatched(md)
	}
	if md.DataPointCount() > 0 {
		if err := p.next.ConsumeMetrics(ctx, md); err != nil {
			return err
		}
	}

	if p.shared != nil {
		if err := p.applyShared(ctx, b); err != nil {
			p.refused(ctx, b, err)
			return err
		}
	} else {
		var put func(windows.Figure)
		if slot := figures.FromContext(ctx); slot != nil {
			put = func(f windows.Figure) { putFigure(slot, f) }
		}
		if err := b.Apply(ctx, put); err != nil {
			p.refused(ctx, b, err)
			return err
		}
	}
	p.tel.ProcessorAggregatePointsAggregated.Add(ctx, int64(b.Values()))
	return nil
}

// putFigure records a window's figure for the receiver (internal/figures).
func putFigure(slot *figures.Slot, f windows.Figure) {
	slot.Put(figures.Figure{Metric: f.Desc.Name, Interval: f.Interval, Start: f.Start, State: f.State})
}

func (p *aggProcessor) refused(ctx context.Context, b *windows.Batch, err error) {
	p.tel.ProcessorAggregatePointsRefused.Add(ctx, int64(b.Points()))
	if p.refuseLog.allow() {
		p.logger.Warn("Refusing a batch", zap.Int("points", b.Points()), zap.Error(err))
	}
}

// resolve walks md and resolves every matched point to its windows (its own
// aggregation and the derived metrics it feeds). It changes no aggregate.
func (p *aggProcessor) resolve(b *windows.Batch, md pmetric.Metrics, nowNs int64, es *embraceSet) (matched bool, invalid int, err error) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		appDone := false
		var app, tenant string
		var hasApp, hasTenant bool
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			ms := sm.Metrics()
			scoped := false
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				t, ok := p.match(m)
				var defs []*embraceDef
				if es != nil && len(es.byMetric) > 0 && (m.Type() == pmetric.MetricTypeGauge || m.Type() == pmetric.MetricTypeSum) {
					defs = es.byMetric[m.Name()]
				}
				if !ok && len(defs) == 0 {
					continue
				}
				var d *windows.Desc
				if ok {
					matched = true
					if !scoped {
						b.Scope(rm, sm)
						scoped = true
					}
					d = b.Identity(m, t.fn)
				}
				if len(defs) > 0 && !appDone {
					app, hasApp, tenant, hasTenant = p.resourceApp(rm.Resource())
					appDone = true
				}
				dps := numberPoints(m)
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					if dp.Flags().NoRecordedValue() {
						continue
					}
					v, wt, valid := pointValue(dp)
					if !valid {
						invalid++
						continue
					}
					// Timestamps are int64 Unix nanoseconds (before 1970: negative,
					// carried as their two's complement; see calendar.MinTime).
					ts := int64(dp.Timestamp())
					if ts == 0 {
						if ts = int64(dp.StartTimestamp()); ts == 0 {
							ts = nowNs
						}
					}
					if !calendar.SupportedNanos(ts) {
						invalid++
						continue
					}
					pt := int32(-1)
					if ok {
						pt = b.Point()
						if err := b.Add(pt, d, dp.Attributes(), t.keep, t.ivs, ts, v, wt); err != nil {
							return matched, invalid, err
						}
					}
					for _, def := range defs {
						if !p.applies(def, dp, app, hasApp, tenant, hasTenant) {
							continue
						}
						if pt < 0 {
							pt = b.Point()
						}
						// Derived metrics are sums of values: weights do not apply.
						if err := b.Add(pt, def.d, dp.Attributes(), def.keep, def.ivs, ts, v, 1); err != nil {
							return matched, invalid, err
						}
					}
				}
			}
		}
	}
	return matched, invalid, nil
}

// pointValue returns a point's value and weight; ok is false when the
// aggregation state would reject them.
func pointValue(dp pmetric.NumberDataPoint) (v, w float64, ok bool) {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		v = float64(dp.IntValue())
	} else {
		v = dp.DoubleValue()
	}
	w = 1
	if a, has := dp.Attributes().Get(otelmap.AttrWeight); has {
		switch a.Type() {
		case pcommon.ValueTypeDouble:
			w = a.Double()
		case pcommon.ValueTypeInt:
			w = float64(a.Int())
		case pcommon.ValueTypeStr:
			f, err := strconv.ParseFloat(a.Str(), 64)
			if err != nil {
				return 0, 0, false
			}
			w = f
		default:
			return 0, 0, false
		}
	}
	// A weight of 0 is valid: the value adds nothing to an Average (apply
	// refuses it where the window would be left without a figure).
	vw := v * w
	return v, w, v-v == 0 && w-w == 0 && vw-vw == 0 && w >= 0
}

func (p *aggProcessor) removeMatched(md pmetric.Metrics) {
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				_, ok := p.match(m)
				return ok
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
}

// rateLimiter allows one event per 10 seconds.
type rateLimiter struct{ last atomic.Int64 }

func (r *rateLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(10*time.Second) && r.last.CompareAndSwap(last, now)
}
