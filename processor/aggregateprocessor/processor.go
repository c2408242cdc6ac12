package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/processor/aggregateprocessor/internal/metadata"
)

const numShards = 64

// A desc is the identity of an output metric shared by its series: resource,
// scope, name, unit and aggregation function. Interned; never freed (there
// are few: one per metric per resource).
type desc struct {
	id   uint64
	key  string // canonical identity, part of every storage key
	rs   string // the resource-and-scope prefix of key
	fn   aggregation.Func
	res  pcommon.Resource
	scp  pcommon.InstrumentationScope
	name string
	unit string
	dsc  string
	meta pcommon.Map // input metadata (custommetrics.* keys are overwritten on output)
	blob []byte      // encoded identity for storage records
	// tenant counts the series-windows in memory of the resource's tenant.
	tenant *tenantWindows
}

// tenantWindows is one tenant's share of the series-windows in memory.
type tenantWindows struct {
	name string
	n    atomic.Int64
}

// tenantOf returns the counter of the tenant named by res. Caller holds descMu.
func (p *aggProcessor) tenantOf(res pcommon.Resource) *tenantWindows {
	var name string
	if v, ok := res.Attributes().Get(otelmap.AttrTenant); ok {
		name = v.AsString()
	}
	tw := p.tenants[name]
	if tw == nil {
		tw = &tenantWindows{name: name}
		p.tenants[name] = tw
	}
	return tw
}

// forget accounts for a window of d leaving memory.
func (p *aggProcessor) forget(d *desc) {
	p.inMem.Add(-1)
	d.tenant.n.Add(-1)
}

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

	seed   maphash.Seed
	shards [numShards]shard
	slab   slab          // the shards' windows
	inMem  atomic.Int64  // windows in memory (reserved before insertion)
	seq    atomic.Uint64 // arrival sequence for first/last ties

	descMu  sync.RWMutex
	descs   map[string]*desc
	descID  uint64
	tenants map[string]*tenantWindows // guarded by descMu

	store  *durable // nil: memory only (or shared)
	shared *shared  // cluster mode: window states in PostgreSQL (shared.go)
	// evictedBefore (memory mode): closed windows ending at or before it may
	// have been evicted, so their figure is unknown and values are refused.
	evictedBefore atomic.Int64

	emitMu      sync.Mutex // one emitter at a time: emission order = state order
	lastRunning int64

	scratch sync.Pool

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
	p := &aggProcessor{
		cfg: cfg, set: set, logger: set.Logger, next: next, cal: cal, now: time.Now, tel: tel,
		seed: maphash.MakeSeed(), descs: map[string]*desc{}, tenants: map[string]*tenantWindows{},
	}
	p.evictedBefore.Store(math.MinInt64)
	p.seq.Store(uint64(time.Now().UnixNano()))
	for i := range p.shards {
		p.shards[i].slab = &p.slab
	}
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
	p.scratch.New = func() any { return &scratch{} }
	err = tel.RegisterProcessorAggregateSeriesWindowsOpenCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(p.inMem.Load())
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
		p.store = newDurable(p, client, host)
		if err := p.store.load(ctx); err != nil {
			_ = client.Close(ctx)
			p.store = nil
			return err
		}
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
	} else if p.store != nil {
		// Emit what closed; open windows are durable and resume after a restart.
		if err := p.tick(ctx, p.now()); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, p.store.stop(ctx))
		p.store = nil
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

// descFor interns the identity of the output of metric m (under resource and
// scope encoded in prefix) aggregated with fn.
func (p *aggProcessor) descFor(sc *scratch, prefix []byte, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics, m pmetric.Metric, fn aggregation.Func) *desc {
	b := append(sc.dkey[:0], prefix...)
	b = appendString(b, m.Name())
	b = appendString(b, m.Unit())
	b = append(b, byte(fn))
	sc.dkey = b
	p.descMu.RLock()
	d := p.descs[string(b)]
	p.descMu.RUnlock()
	if d != nil {
		return d
	}
	p.descMu.Lock()
	defer p.descMu.Unlock()
	if d = p.descs[string(b)]; d != nil {
		return d
	}
	p.descID++
	d = &desc{
		id: p.descID, key: string(b), fn: fn,
		res: pcommon.NewResource(), scp: pcommon.NewInstrumentationScope(),
		name: m.Name(), unit: m.Unit(), dsc: m.Description(), meta: pcommon.NewMap(),
	}
	rm.Resource().CopyTo(d.res)
	sm.Scope().CopyTo(d.scp)
	m.Metadata().CopyTo(d.meta)
	d.rs = d.key[:len(prefix)]
	d.blob = encodeDescBlob(d)
	d.tenant = p.tenantOf(d.res)
	p.descs[d.key] = d
	return d
}

// appendResourceScope appends the canonical identity of a resource and scope.
// The scope version is left out: it changes with every upgrade of the sender
// (our receiver stamps the collector's version), and a late value arriving
// after an upgrade must restate the window it belongs to, not start a new
// one whose partial figure would overwrite the stored complete one.
func appendResourceScope(b []byte, sc *scratch, rm pmetric.ResourceMetrics, sm pmetric.ScopeMetrics) []byte {
	b, sc.kvs = appendMap(b, rm.Resource().Attributes(), nil, sc.kvs)
	b = appendString(b, sm.Scope().Name())
	b, sc.kvs = appendMap(b, sm.Scope().Attributes(), nil, sc.kvs)
	return b
}

type ref struct {
	w    *window
	miss int32 // index in scratch.miss when w is nil at resolution
	pt   int32 // point index (arrival order within the batch)
	v    float64
	wt   float64
	ts   int64
}

type missing struct {
	key    string // full key
	hash   uint64
	d      *desc
	iv     calendar.Interval
	start  int64
	span   uint32
	shard  uint8
	refs   int32
	closed bool
	state  aggregation.State
	loaded bool
	final  bool
	w      *window
}

type scratch struct {
	kvs     []kv
	buf     []byte
	rs      []byte
	dkey    []byte
	refs    []ref
	order   []int32
	miss    []missing
	missIdx map[string]int32
	points  int32
	undo    []undo
	changed []*pending
}

func (sc *scratch) reset() {
	sc.refs = sc.refs[:0]
	clear(sc.miss)
	sc.miss = sc.miss[:0]
	clear(sc.missIdx)
	sc.points = 0
	clear(sc.changed)
	sc.changed = sc.changed[:0]
}

// Errors that refuse a whole batch.
var (
	errLimit       = errors.New("aggregate processor: max_series_windows reached, refusing points for new series-windows; retry later")
	errTenantLimit = errors.New("aggregate processor: the tenant's max_series_windows_per_tenant is reached, refusing its points for new series-windows; retry later")
	errNonFinite   = errors.New("aggregate processor: the values would make a window's figure non-finite (a sum beyond ±1.8e308, or an average whose weights sum to 0); the window keeps its last finite figure")
)

// ConsumeMetrics aggregates matched points and passes the rest on. A batch is
// counted entirely or not at all (the limit, retention and finiteness are
// checked before any state changes, and a failed commit leaves no trace), and
// it returns only once the touched windows are durable.
func (p *aggProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if answerProbe(ctx) {
		return nil
	}
	sc := p.scratch.Get().(*scratch)
	defer func() { sc.reset(); p.scratch.Put(sc) }()
	nowNs := p.now().UnixNano()

	matched, invalid, err := p.resolve(sc, md, nowNs, p.derivedDefs(ctx))
	if invalid > 0 {
		p.tel.ProcessorAggregatePointsInvalid.Add(ctx, int64(invalid))
		if p.invalidLog.allow() {
			p.logger.Warn("Ignoring data points with a NaN or infinite value, a NaN, infinite or negative custommetrics.weight, or a timestamp outside 1700-01-01..2199-12-31", zap.Int("points", invalid))
		}
	}
	if err == nil && len(sc.miss) > 0 {
		err = p.insertMissing(ctx, sc, nowNs)
	}
	if err != nil {
		p.unpin(sc)
		p.refused(ctx, sc, err)
		return err
	}
	if !matched && len(sc.refs) == 0 {
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
			p.unpin(sc)
			return err
		}
	}

	if p.shared != nil {
		if err := p.applyShared(ctx, sc); err != nil {
			p.refused(ctx, sc, err)
			return err
		}
		p.tel.ProcessorAggregatePointsAggregated.Add(ctx, int64(len(sc.refs)))
		return nil
	}
	// The figures of the batch's windows are read after apply: they stay
	// pinned until then (an unpinned window may be evicted and its slot
	// reused).
	slot := figures.FromContext(ctx)
	keepPins := slot != nil
	if err := p.apply(sc, keepPins); err != nil {
		if keepPins {
			p.unpin(sc)
		}
		p.refused(ctx, sc, err)
		return err
	}
	if p.store != nil {
		// The answer must say whether the values counted, so it waits for
		// their commit even when the caller stops waiting (commits end).
		if err := p.store.wait(context.WithoutCancel(ctx), sc.changed); err != nil {
			if errors.Is(err, errNonFinite) {
				err = consumererror.NewPermanent(err)
			}
			if keepPins {
				p.unpin(sc)
			}
			p.refused(ctx, sc, err)
			return err
		}
	}
	p.tel.ProcessorAggregatePointsAggregated.Add(ctx, int64(len(sc.refs)))
	if slot != nil {
		p.putFigures(sc, slot)
	}
	return nil
}

func (p *aggProcessor) refused(ctx context.Context, sc *scratch, err error) {
	p.tel.ProcessorAggregatePointsRefused.Add(ctx, int64(sc.points))
	if p.refuseLog.allow() {
		p.logger.Warn("Refusing a batch", zap.Int("points", int(sc.points)), zap.Error(err))
	}
}

// resolve walks md, pins the windows of every matched point (its own
// aggregation and the derived metrics it feeds), and collects the windows
// that are not in memory. It changes no aggregate.
func (p *aggProcessor) resolve(sc *scratch, md pmetric.Metrics, nowNs int64, es *embraceSet) (matched bool, invalid int, err error) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		sms := rm.ScopeMetrics()
		rsDone, appDone := false, false
		var app, tenant string
		var hasApp, hasTenant bool
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			ms := sm.Metrics()
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
				var d *desc
				if ok {
					matched = true
					if !rsDone {
						sc.rs = appendResourceScope(sc.rs[:0], sc, rm, sm)
						rsDone = true
					}
					d = p.descFor(sc, sc.rs, rm, sm, m, t.fn)
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
					pt := sc.points
					counted := false
					if ok {
						sc.points++
						counted = true
						if err := p.resolvePoint(sc, d, dp, t.keep, t.ivs, ts, nowNs, ref{pt: pt, v: v, wt: wt, ts: ts}); err != nil {
							return matched, invalid, err
						}
					}
					for _, def := range defs {
						if !p.applies(def, dp, app, hasApp, tenant, hasTenant) {
							continue
						}
						if !counted {
							sc.points++
							counted = true
						}
						// Derived metrics are sums of values: weights do not apply.
						if err := p.resolvePoint(sc, def.d, dp, def.keep, def.ivs, ts, nowNs, ref{pt: pt, v: v, wt: 1, ts: ts}); err != nil {
							return matched, invalid, err
						}
					}
				}
			}
			rsDone = false
		}
	}
	return matched, invalid, nil
}

// resolvePoint resolves the windows of one point of output d, one per interval.
func (p *aggProcessor) resolvePoint(sc *scratch, d *desc, dp pmetric.NumberDataPoint, keep func(string) bool, ivs []calendar.Interval, ts, nowNs int64, r ref) error {
	b := binary.LittleEndian.AppendUint64(sc.buf[:0], d.id)
	b = append(b, make([]byte, keyHeader-8)...)
	b, sc.kvs = appendMap(b, dp.Attributes(), keep, sc.kvs)
	sc.buf = b
	for _, iv := range ivs {
		start, end := p.cal.WindowNanos(iv, ts)
		b[8] = byte(iv)
		binary.LittleEndian.PutUint64(b[9:], uint64(start))
		if err := p.resolveOne(sc, d, b, iv, start, end, nowNs, r); err != nil {
			return err
		}
	}
	return nil
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

func (p *aggProcessor) resolveOne(sc *scratch, d *desc, key []byte, iv calendar.Interval, start, end, nowNs int64, r ref) error {
	if ret := p.cfg.RestatementRetention; ret > 0 && end <= nowNs-int64(ret) {
		return consumererror.NewPermanent(fmt.Errorf(
			"aggregate processor: a value at %s falls in the %s window ending %s, which is older than restatement_retention (%s); "+
				"its stored figure may be gone, so restating it could publish a wrong figure",
			time.Unix(0, r.ts).UTC().Format(time.RFC3339), iv, time.Unix(0, end).UTC().Format(time.RFC3339), p.cfg.RestatementRetention))
	}
	h := mapHash(p, key)
	si := uint8(h & (numShards - 1))
	sh := &p.shards[si]
	sh.mu.Lock()
	w := sh.get(h, key)
	if w != nil {
		w.pins++
	}
	sh.mu.Unlock()
	if w != nil {
		r.w = w
		sc.refs = append(sc.refs, r)
		return nil
	}
	closed := end+int64(p.cfg.AllowedLateness) <= nowNs
	if p.store == nil && p.shared == nil && closed && end <= p.evictedBefore.Load() {
		return consumererror.NewPermanent(fmt.Errorf(
			"aggregate processor: a value at %s falls in the closed %s window ending %s, whose figure was evicted from memory "+
				"(no storage extension is configured); restating it from this value alone would publish a wrong figure",
			time.Unix(0, r.ts).UTC().Format(time.RFC3339), iv, time.Unix(0, end).UTC().Format(time.RFC3339)))
	}
	if sc.missIdx == nil {
		sc.missIdx = map[string]int32{}
	}
	mi, ok := sc.missIdx[string(key)]
	if !ok {
		span, ok := spanOf(start, end)
		if !ok { // calendar windows are whole seconds, at most a year
			return consumererror.NewPermanent(fmt.Errorf("aggregate processor: the %s window [%d, %d) is not a whole number of seconds", iv, start, end))
		}
		mi = int32(len(sc.miss))
		k := string(key)
		sc.missIdx[k] = mi
		sc.miss = append(sc.miss, missing{key: k, hash: h, d: d, iv: iv, start: start, span: span, shard: si, closed: closed})
	}
	sc.miss[mi].refs++
	r.miss = mi
	sc.refs = append(sc.refs, r)
	return nil
}

// insertMissing reserves room for the batch's new windows (refusing the
// batch when there is none, in all or for one of its tenants), loads closed
// ones from storage, and inserts them pinned.
func (p *aggProcessor) insertMissing(ctx context.Context, sc *scratch, _ int64) error {
	n := int64(len(sc.miss))
	if p.inMem.Add(n) > int64(p.cfg.MaxSeriesWindows) {
		p.inMem.Add(-n)
		return fmt.Errorf("%w (max_series_windows=%d, %d new series-windows in this batch)", errLimit, p.cfg.MaxSeriesWindows, n)
	}
	for i := range sc.miss {
		sc.miss[i].d.tenant.n.Add(1)
	}
	release := func() {
		p.inMem.Add(-n)
		for i := range sc.miss {
			sc.miss[i].d.tenant.n.Add(-1)
		}
	}
	if limit := int64(p.cfg.MaxSeriesWindowsPerTenant); limit > 0 {
		for i := range sc.miss {
			if tw := sc.miss[i].d.tenant; tw.n.Load() > limit {
				release()
				return fmt.Errorf("%w (tenant %q, max_series_windows_per_tenant=%d)", errTenantLimit, tw.name, limit)
			}
		}
	}
	if p.store != nil {
		if err := p.store.loadMissing(ctx, sc.miss); err != nil {
			release()
			return err
		}
	}
	for i := range sc.miss {
		ms := &sc.miss[i]
		sh := &p.shards[ms.shard]
		sh.mu.Lock()
		w := sh.get(ms.hash, []byte(ms.key))
		if w != nil {
			p.forget(ms.d)
		} else {
			w = sh.put(ms.hash, []byte(ms.key), ms.d, ms.iv, ms.start, ms.span, ms.shard)
			if ms.loaded {
				w.acc = aggregation.CompactOf(ms.d.fn, ms.state)
				w.version = 1
				w.final = ms.final
			}
		}
		w.pins += ms.refs
		sh.mu.Unlock()
		ms.w = w
	}
	for i := range sc.refs {
		if sc.refs[i].w == nil {
			sc.refs[i].w = sc.miss[sc.refs[i].miss].w
		}
	}
	return nil
}

func (p *aggProcessor) unpin(sc *scratch) {
	for i := range sc.refs {
		w := sc.refs[i].w
		if w == nil {
			continue
		}
		sh := &p.shards[w.shard]
		sh.mu.Lock()
		w.pins--
		sh.mu.Unlock()
	}
}

// apply adds the resolved points to their windows, all or nothing. With
// every shard the batch touches locked (in shard order), it adds each point
// (with storage, to its window's pending changes, see pending; without, to
// the window itself); when a point would make a window's figure non-finite
// it undoes the batch and refuses it. Points are applied shard by shard (a
// stable counting sort, so each window still takes its points in batch
// order). With storage, the pendings it changed are left in sc.changed. It
// unpins the windows unless keepPins.
func (p *aggProcessor) apply(sc *scratch, keepPins bool) error {
	base := p.seq.Add(uint64(sc.points)) - uint64(sc.points)
	var start [numShards + 1]int32
	for i := range sc.refs {
		start[sc.refs[i].w.shard+1]++
	}
	for s := 1; s <= numShards; s++ {
		start[s] += start[s-1]
	}
	if cap(sc.order) < len(sc.refs) {
		sc.order = make([]int32, len(sc.refs))
	}
	order := sc.order[:len(sc.refs)]
	next := start
	for i := range sc.refs {
		s := sc.refs[i].w.shard
		order[next[s]] = int32(i)
		next[s]++
	}
	for s := range numShards {
		if start[s] != start[s+1] {
			p.shards[s].mu.Lock()
		}
	}
	sc.undo = sc.undo[:0]
	sc.changed = sc.changed[:0]
	var bad *window
	for _, i := range order {
		r := &sc.refs[i]
		w := r.w
		c := &w.acc
		if p.store != nil {
			e := p.store.pendingOf(w)
			c = &e.delta
			sc.changed = append(sc.changed, e)
		}
		sc.undo = append(sc.undo, undo{c: c, old: *c})
		c.Add(w.d.fn, r.v, r.wt, r.ts, base+uint64(r.pt)+1)
		if fn := w.d.fn; (fn == aggregation.Sum || fn == aggregation.Average) && !w.live().Finite(fn) {
			bad = w
			break
		}
	}
	var badErr error
	if bad != nil {
		for i := len(sc.undo) - 1; i >= 0; i-- {
			*sc.undo[i].c = sc.undo[i].old
		}
		// Pendings queued for this batch stay queued, empty: their commit
		// rewrites the committed state.
		sc.changed = sc.changed[:0]
		// Named here, under the lock: once unpinned, bad may be evicted
		// and its slot reused by another series.
		badErr = consumererror.NewPermanent(fmt.Errorf("%w (%s %s window starting %s)", errNonFinite,
			bad.d.name, bad.iv, time.Unix(0, bad.start).UTC().Format(time.RFC3339)))
	}
	for i := range sc.refs {
		w := sc.refs[i].w
		if bad == nil && p.store == nil {
			w.version++
		}
		if !keepPins {
			w.pins--
		}
	}
	for s := range numShards {
		if start[s] != start[s+1] {
			p.shards[s].mu.Unlock()
		}
	}
	return badErr
}

// undo is a value's target in apply and what it held before.
type undo struct {
	c   *aggregation.Compact
	old aggregation.Compact
}

// putFigures records the committed state of each window the batch changed
// in slot (internal/figures), and unpins them (apply left them pinned).
func (p *aggProcessor) putFigures(sc *scratch, slot *figures.Slot) {
	for i := range sc.refs {
		w := sc.refs[i].w
		sh := &p.shards[w.shard]
		sh.mu.Lock()
		slot.Put(figures.Figure{Metric: w.d.name, Interval: w.iv, Start: w.start, State: w.acc.State(w.d.fn)})
		w.pins--
		sh.mu.Unlock()
	}
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

func mapHash(p *aggProcessor, b []byte) uint64 { return maphash.Bytes(p.seed, b) }

// rateLimiter allows one event per 10 seconds.
type rateLimiter struct{ last atomic.Int64 }

func (r *rateLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(10*time.Second) && r.last.CompareAndSwap(last, now)
}
