package anomalyprocessor // import "github.com/custommetrics/bundle/processor/anomalyprocessor"

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/storageclient"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/detector"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/metadata"
)

// Output names (see README.md).
const (
	scoreSuffix = otelmap.AnomalyScoreSuffix
	flagSuffix  = otelmap.AnomalyFlagSuffix

	attrFlag     = otelmap.AttrAnomalyFlag
	attrScore    = otelmap.AttrAnomalyScore
	attrExpected = otelmap.AttrAnomalyExpected
	attrLower    = otelmap.AttrAnomalyLower
	attrUpper    = otelmap.AttrAnomalyUpper
)

type anomalyProcessor struct {
	cfg    *Config
	id     component.ID
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder

	det      detector.Config // what every series is scored with
	learning detector.Config // det with an endless learning period (learning_duration not reached)
	learnDur int64           // learning_duration in seconds

	include, exclude matcher
	selCache         sync.Map // metric name -> bool, when regexps are used
	selCacheN        atomic.Int64

	shards  [nShards]shard
	nSeries atomic.Int64
	tenants tenantTable // series per tenant (max_series_per_tenant)

	now func() time.Time // wall clock (tests replace it)

	client storage.Client
	lazy   bool          // the storage cannot be walked: load states on first sight
	shared *sharedStates // cluster mode: states in PostgreSQL (shared.go)

	stop chan struct{}
	done chan struct{}
	// mu serialises snapshots and eviction (the janitor and Shutdown).
	mu sync.Mutex
}

type matcher struct {
	names map[string]struct{}
	res   []*regexp.Regexp
}

func newMatcher(mc MatchConfig) matcher {
	m := matcher{names: make(map[string]struct{}, len(mc.Names))}
	for _, n := range mc.Names {
		m.names[n] = struct{}{}
	}
	for _, r := range mc.Regexps {
		m.res = append(m.res, regexp.MustCompile(r)) // checked by Validate
	}
	return m
}

func (m *matcher) empty() bool { return len(m.names) == 0 && len(m.res) == 0 }

func (m *matcher) match(name string) bool {
	if _, ok := m.names[name]; ok {
		return true
	}
	for _, r := range m.res {
		if r.MatchString(name) {
			return true
		}
	}
	return false
}

func newProcessor(set processor.Settings, cfg *Config) (*anomalyProcessor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	det, err := cfg.detectorConfig()
	if err != nil {
		return nil, err
	}
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &anomalyProcessor{
		cfg:      cfg,
		id:       set.ID,
		logger:   set.Logger,
		tb:       tb,
		det:      det,
		learning: det,
		learnDur: int64(cfg.LearningDuration / time.Second),
		include:  newMatcher(cfg.Include),
		exclude:  newMatcher(cfg.Exclude),
		now:      time.Now,
	}
	p.learning.LearningPeriod = math.MaxInt
	for i := range p.shards {
		p.shards[i].m = make(map[seriesKey]*series)
	}
	return p, nil
}

// selected reports whether metric name is scored.
func (p *anomalyProcessor) selected(name string) bool {
	if len(p.include.res) == 0 && len(p.exclude.res) == 0 {
		return p.selectedUncached(name)
	}
	if v, ok := p.selCache.Load(name); ok {
		return v.(bool)
	}
	sel := p.selectedUncached(name)
	if p.selCacheN.Add(1) <= 10000 {
		p.selCache.Store(name, sel)
	}
	return sel
}

func (p *anomalyProcessor) selectedUncached(name string) bool {
	if strings.HasSuffix(name, scoreSuffix) || strings.HasSuffix(name, flagSuffix) {
		return false // our own output
	}
	if !p.include.empty() && !p.include.match(name) {
		return false
	}
	return !p.exclude.match(name)
}

func (p *anomalyProcessor) start(ctx context.Context, host component.Host) error {
	if p.cfg.Postgres != nil {
		if err := p.startShared(ctx); err != nil {
			return err
		}
	} else if p.cfg.Storage == nil {
		p.logger.Warn("no storage configured: detector states are lost on restart and every series learns again (set `storage` to a storage extension)")
	} else {
		client, err := storageclient.Open(ctx, host, *p.cfg.Storage, component.KindProcessor, p.id)
		if err != nil {
			return err
		}
		p.client = client
		if err := p.load(ctx); err != nil {
			_ = client.Close(ctx)
			p.client = nil
			return err
		}
	}
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go p.janitor()
	return nil
}

// load reads every stored series state (when the storage can be walked;
// otherwise states are read on first sight of their series).
func (p *anomalyProcessor) load(ctx context.Context) error {
	w, ok := p.client.(storage.Walker)
	if !ok {
		p.lazy = true
		p.logger.Info("storage cannot be listed: detector states are loaded when their series is first seen, and states of series never seen again are not evicted from storage")
		return nil
	}
	now := p.now().UnixNano()
	ttl := int64(p.cfg.SeriesTTL)
	var loaded, dropped int64
	err := w.Walk(ctx, func(key string, value []byte) ([]*storage.Operation, error) {
		k, ok := parseStorageKey(key)
		if !ok {
			return nil, nil // not ours
		}
		var s series
		tenant, known, err := s.unmarshalWithTenant(value)
		if err != nil {
			p.logger.Warn("dropping unreadable detector state", zap.String("key", key), zap.Error(err))
			dropped++
			return []*storage.Operation{storage.DeleteOperation(key)}, nil
		}
		if now-s.seen > ttl || loaded >= int64(p.cfg.MaxSeries) {
			dropped++
			return []*storage.Operation{storage.DeleteOperation(key)}, nil
		}
		if known { // states of version 1 are attributed at their next point
			id, ok, _ := p.tenants.acquire(tenant, p.cfg.MaxSeriesPerTenant)
			if !ok {
				dropped++
				return []*storage.Operation{storage.DeleteOperation(key)}, nil
			}
			s.tenant = id
		}
		sh := &p.shards[k.a%nShards]
		slot := sh.alloc()
		*slot = s
		sh.m[k] = slot
		loaded++
		return nil, nil
	})
	if err != nil {
		p.tb.ProcessorAnomalyStorageErrors.Add(ctx, 1)
		return fmt.Errorf("loading detector states from %q: %w", p.cfg.Storage, err)
	}
	p.nSeries.Store(loaded)
	p.tb.ProcessorAnomalySeries.Add(ctx, loaded)
	if dropped > 0 {
		p.tb.ProcessorAnomalySeriesEvicted.Add(ctx, dropped)
	}
	p.logger.Info("loaded detector states", zap.Int64("series", loaded), zap.Int64("dropped", dropped))
	return nil
}

func (p *anomalyProcessor) janitor() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.maintain(context.Background())
		}
	}
}

// maintain evicts quiet series and writes changed states (one Batch).
func (p *anomalyProcessor) maintain(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shared != nil {
		p.expireShared(ctx)
		return
	}
	cutoff := p.now().UnixNano() - int64(p.cfg.SeriesTTL)
	var ops []*storage.Operation
	var evicted int64
	var written []seriesKey
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for k, s := range sh.m {
			switch {
			case s.seen < cutoff:
				p.tenants.release(s.tenant)
				sh.release(k, s)
				evicted++
				if p.client != nil {
					ops = append(ops, storage.DeleteOperation(storageKey(k)))
				}
			case s.dirty && p.client != nil:
				s.dirty = false
				ops = append(ops, storage.SetOperation(storageKey(k), s.appendBinary(make([]byte, 0, seriesHeader+1024), p.tenants.name(s.tenant))))
				written = append(written, k)
			}
		}
		sh.mu.Unlock()
	}
	if evicted > 0 {
		p.nSeries.Add(-evicted)
		p.tb.ProcessorAnomalySeries.Add(ctx, -evicted)
		p.tb.ProcessorAnomalySeriesEvicted.Add(ctx, evicted)
	}
	if len(ops) == 0 {
		return
	}
	if err := p.client.Batch(ctx, ops...); err != nil {
		p.tb.ProcessorAnomalyStorageErrors.Add(ctx, 1)
		p.logger.Warn("snapshot of detector states failed; will retry", zap.Int("operations", len(ops)), zap.Error(err))
		for _, k := range written {
			sh := &p.shards[k.a%nShards]
			sh.mu.Lock()
			if s := sh.m[k]; s != nil {
				s.dirty = true
			}
			sh.mu.Unlock()
		}
	}
}

func (p *anomalyProcessor) shutdown(ctx context.Context) error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	var err error
	if p.shared != nil {
		p.shared.rounds.Close()
		p.shared.pool.Close()
		p.shared = nil
	}
	if p.client != nil {
		p.maintain(ctx)
		err = p.client.Close(ctx)
		p.client = nil
	}
	p.tb.Shutdown()
	return err
}

// unscoredAttrs are the attribute sets of the unscored counter, by reason.
var unscoredAttrs = func() (a [nReasons]metric.AddOption) {
	for r, name := range reasonNames {
		a[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", name)))
	}
	return a
}()

// batchStats are the telemetry counts of one ConsumeMetrics call.
type batchStats struct {
	scored, flagged, created int64
	unscored                 [nReasons]int64 // by reason
}

// Why a point of a new series passes through unscored: the value of the
// reason attribute of otelcol_processor_anomaly_points_unscored.
const (
	reasonMaxSeries          = iota // max_series series are tracked
	reasonMaxSeriesPerTenant        // the point's tenant has max_series_per_tenant series
	nReasons
)

var reasonNames = [nReasons]string{"max_series", "max_series_per_tenant"}

// score looks the series of tenant up (creating it when allowed) and scores dp's value.
func (p *anomalyProcessor) score(ctx context.Context, k seriesKey, tenant string, ts int64, v float64, now int64, st *batchStats) (detector.Result, outcome) {
	sh := &p.shards[k.a%nShards]
	sh.mu.Lock()
	s := sh.m[k]
	if s == nil {
		if s = p.newSeries(ctx, sh, k, tenant, st); s == nil {
			sh.mu.Unlock()
			return detector.Result{}, unscored
		}
	}
	if s.tenant == noTenant {
		// A state stored without its tenant: it counts for its tenant from
		// now on, even beyond the quota (it is no new series).
		s.tenant, _, _ = p.tenants.acquire(tenant, 0)
		s.dirty = true
	}
	res, ok := p.update(s, ts, v, now)
	sh.mu.Unlock()
	return res, ok
}

// outcome says what scoring did with a point.
type outcome uint8

const (
	unscored outcome = iota // no output: learning, late, restated, or no series
	scored                  // scored now
	repeated                // the series' last point again: its earlier result, not counted again
)

// update scores value v at ts (unix ns) of series s, at wall clock now.
func (p *anomalyProcessor) update(s *series, ts int64, v float64, now int64) (detector.Result, outcome) {
	s.seen = now
	if ts <= s.lastTS {
		// Not after the last value: a late or repeated point is not learned
		// twice; the last point again, with its value, gets its result again.
		if ts == s.lastTS && v == s.lastValue && s.last.Ready {
			return s.last, repeated
		}
		return detector.Result{}, unscored
	}
	sec := ts / 1e9
	if s.lastTS == noPoint {
		s.firstTS = sec
	}
	s.lastTS = ts
	c := &p.det
	if p.learnDur > 0 && sec-s.firstTS < p.learnDur {
		c = &p.learning
	}
	res := s.st.Update(c, sec, v)
	s.last, s.lastValue = res, v
	s.dirty = true
	if !res.Ready {
		return res, unscored
	}
	return res, scored
}

// newSeries creates the state of series k of tenant (sh is locked; it may be
// unlocked and locked again while a state is read from storage). It returns
// nil, and counts the point unscored, when max_series series are tracked or
// the tenant has max_series_per_tenant series.
func (p *anomalyProcessor) newSeries(ctx context.Context, sh *shard, k seriesKey, tenant string, st *batchStats) *series {
	var stored []byte
	if p.lazy && p.client != nil {
		sh.mu.Unlock()
		data, err := p.client.Get(ctx, storageKey(k))
		if err != nil {
			p.tb.ProcessorAnomalyStorageErrors.Add(ctx, 1)
		} else {
			stored = data
		}
		sh.mu.Lock()
		if s := sh.m[k]; s != nil {
			return s
		}
	}
	if p.nSeries.Add(1) > int64(p.cfg.MaxSeries) {
		p.nSeries.Add(-1)
		st.unscored[reasonMaxSeries]++
		return nil
	}
	id, ok, first := p.tenants.acquire(tenant, p.cfg.MaxSeriesPerTenant)
	if !ok {
		p.nSeries.Add(-1)
		st.unscored[reasonMaxSeriesPerTenant]++
		if first {
			p.logger.Warn("tenant reached max_series_per_tenant: points of its new series pass through unscored until some of its series are evicted",
				zap.String("tenant", tenant), zap.Int("max_series_per_tenant", p.cfg.MaxSeriesPerTenant))
		}
		return nil
	}
	st.created++
	s := sh.alloc()
	if stored != nil && s.unmarshalBinary(stored) != nil {
		*s = newState()
	}
	s.tenant = id
	sh.m[k] = s
	return s
}

func (p *anomalyProcessor) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	if p.shared != nil {
		return md, p.processShared(ctx, md)
	}
	now := p.now().UnixNano()
	var st batchStats
	p.walk(md, now, func(k seriesKey, tenant string, ts int64, v float64) (detector.Result, outcome) {
		return p.score(ctx, k, tenant, ts, v, now, &st)
	}, &st)
	p.record(ctx, &st)
	return md, nil
}

// scorer scores one value of series k.
type scorer func(k seriesKey, tenant string, ts int64, v float64) (detector.Result, outcome)

// walk scores every selected point of md with score and adds the outputs.
func (p *anomalyProcessor) walk(md pmetric.Metrics, now int64, score scorer, st *batchStats) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		rk := hashMap(0, rm.Resource().Attributes(), false)
		var tenant string // absent: the default tenant
		if v, ok := rm.Resource().Attributes().Get(otelmap.AttrTenant); ok {
			tenant = v.AsString()
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			var extra pmetric.MetricSlice
			for l, n := 0, ms.Len(); l < n; l++ {
				m := ms.At(l)
				var pts pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					pts = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					pts = m.Sum().DataPoints()
				default:
					continue
				}
				if pts.Len() == 0 || !p.selected(m.Name()) || isRunningFigure(m) {
					continue
				}
				p.processPoints(m, pts, metricKey(rk, m.Name()), tenant, now, score, &extra, st)
			}
			if extra != (pmetric.MetricSlice{}) && extra.Len() > 0 {
				extra.MoveAndAppendTo(ms)
			}
		}
	}
}

// isRunningFigure reports whether m holds the aggregate processor's running
// figures of open windows: partial values that its closing figure (same
// timestamp) supersedes. They pass through unscored, so that each window is
// scored once, on its final figure.
func isRunningFigure(m pmetric.Metric) bool {
	v, ok := m.Metadata().Get(otelmap.MetaWindow)
	return ok && v.Str() == otelmap.WindowRunning
}

func (p *anomalyProcessor) record(ctx context.Context, st *batchStats) {
	if st.scored > 0 {
		p.tb.ProcessorAnomalyPointsScored.Add(ctx, st.scored)
	}
	if st.flagged > 0 {
		p.tb.ProcessorAnomalyPointsFlagged.Add(ctx, st.flagged)
	}
	for r, n := range st.unscored {
		if n > 0 {
			p.tb.ProcessorAnomalyPointsUnscored.Add(ctx, n, unscoredAttrs[r])
		}
	}
	if st.created > 0 {
		p.tb.ProcessorAnomalySeries.Add(ctx, st.created)
	}
}

// processPoints scores the points of metric m and appends the output.
func (p *anomalyProcessor) processPoints(m pmetric.Metric, pts pmetric.NumberDataPointSlice, mk seriesKey, tenant string, now int64, score scorer, extra *pmetric.MetricSlice, st *batchStats) {
	var scores, flags pmetric.NumberDataPointSlice
	created := false
	for i := 0; i < pts.Len(); i++ {
		dp := pts.At(i)
		if dp.Flags().NoRecordedValue() {
			continue
		}
		var v float64
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			v = float64(dp.IntValue())
		case pmetric.NumberDataPointValueTypeDouble:
			v = dp.DoubleValue()
		default:
			continue
		}
		ts := int64(dp.Timestamp()) // int64: before 1970 negative (two's complement)
		if ts == 0 {
			ts = now
		}
		k := pointKey(mk, hashMap(0, dp.Attributes(), true))
		res, how := score(k, tenant, ts, v)
		if how == unscored {
			continue
		}
		if how == scored {
			st.scored++
			if res.Anomaly {
				st.flagged++
			}
		}
		if p.cfg.Metrics {
			if !created {
				created = true
				if *extra == (pmetric.MetricSlice{}) {
					*extra = pmetric.NewMetricSlice()
				}
				scores = newGauge(extra.AppendEmpty(), m.Name()+scoreSuffix,
					"Anomaly score in [0,1] of "+m.Name()+" (1: most anomalous), from the anomaly processor.")
				flags = newGauge(extra.AppendEmpty(), m.Name()+flagSuffix,
					"1 when the value of "+m.Name()+" is flagged as anomalous by the anomaly processor, else 0.")
			}
			if scores.Len() == 0 {
				scores.EnsureCapacity(pts.Len() - i)
				flags.EnsureCapacity(pts.Len() - i)
			}
			sdp := scores.AppendEmpty()
			dp.Attributes().CopyTo(sdp.Attributes())
			sdp.SetStartTimestamp(dp.StartTimestamp())
			sdp.SetTimestamp(dp.Timestamp())
			sdp.SetDoubleValue(res.Score)
			fdp := flags.AppendEmpty()
			dp.Attributes().CopyTo(fdp.Attributes())
			fdp.SetStartTimestamp(dp.StartTimestamp())
			fdp.SetTimestamp(dp.Timestamp())
			if res.Anomaly {
				fdp.SetIntValue(1)
			} else {
				fdp.SetIntValue(0)
			}
		}
		if p.cfg.Attributes {
			a := dp.Attributes()
			a.PutBool(attrFlag, res.Anomaly)
			a.PutDouble(attrScore, res.Score)
			a.PutDouble(attrExpected, res.Expected)
			a.PutDouble(attrLower, res.Lower)
			a.PutDouble(attrUpper, res.Upper)
		}
	}
}

func newGauge(m pmetric.Metric, name, desc string) pmetric.NumberDataPointSlice {
	m.SetName(name)
	m.SetDescription(desc)
	m.SetUnit("1")
	return m.SetEmptyGauge().DataPoints()
}
