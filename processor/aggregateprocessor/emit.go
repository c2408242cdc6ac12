package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/otelmap"
)

type emitKind uint8

const (
	emitRunning emitKind = iota
	emitFinal
	emitRestatement
)

var windowKinds = [...]string{emitRunning: otelmap.WindowRunning, emitFinal: otelmap.WindowClosed, emitRestatement: otelmap.WindowRestatement}

// snap is a window's figure taken for emission.
type snap struct {
	w       *window
	acc     aggregation.Compact
	attrs   []byte // w's canonical attributes (taken under the shard lock)
	version uint32
	kind    emitKind
}

// tick emits the windows that closed (or were restated) since the last tick
// and, when running_interval is due, the running figures of changed open
// windows; then it evicts what no longer needs to be in memory.
func (p *aggProcessor) tick(ctx context.Context, now time.Time) error {
	if p.shared != nil {
		return p.emitShared(ctx, now.UnixNano(), false)
	}
	return p.emit(ctx, now.UnixNano(), false)
}

// flushAll emits everything not yet emitted, open windows as running figures.
func (p *aggProcessor) flushAll(ctx context.Context, now time.Time) error {
	return p.emit(ctx, now.UnixNano(), true)
}

// runningDue reports whether this emission includes running figures (all,
// or running_interval has passed since the last one). Caller holds emitMu.
func (p *aggProcessor) runningDue(nowNs int64, all bool) bool {
	if ri := int64(p.cfg.RunningInterval); ri > 0 && nowNs-p.lastRunning >= ri {
		p.lastRunning = nowNs
		return true
	}
	return all
}

func (p *aggProcessor) emit(ctx context.Context, nowNs int64, all bool) error {
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	running := p.runningDue(nowNs, all)
	lateness := int64(p.cfg.AllowedLateness)
	var snaps []snap
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.version == w.emitted {
				return
			}
			closed := w.end()+lateness <= nowNs
			switch {
			case closed && w.final:
				snaps = append(snaps, snap{w, w.acc, sh.attrs(w), w.version, emitRestatement})
			case closed:
				snaps = append(snaps, snap{w, w.acc, sh.attrs(w), w.version, emitFinal})
			case running:
				snaps = append(snaps, snap{w, w.acc, sh.attrs(w), w.version, emitRunning})
			}
		})
		sh.mu.Unlock()
	}
	if len(snaps) > 0 {
		if err := p.next.ConsumeMetrics(ctx, p.build(snaps)); err != nil {
			return err
		}
		var final, restated, run int64
		for _, s := range snaps {
			sh := &p.shards[s.w.shard]
			sh.mu.Lock()
			s.w.emitted = s.version // one emitter: versions only grow
			if s.kind != emitRunning {
				s.w.final = true
				if p.store != nil {
					// Record that this closing figure went out, so a restart
					// does not emit it again (no waiter: at worst a restart
					// emits the same figure once more).
					p.store.pendingOf(s.w)
				}
			}
			sh.mu.Unlock()
			switch s.kind {
			case emitFinal:
				final++
			case emitRestatement:
				restated++
			default:
				run++
			}
		}
		p.tel.ProcessorAggregateWindowsEmitted.Add(ctx, final)
		p.tel.ProcessorAggregateRestatementsEmitted.Add(ctx, restated)
		p.tel.ProcessorAggregateRunningEmitted.Add(ctx, run)
		if p.store != nil {
			p.store.kick()
		}
	}
	p.evict(nowNs)
	return nil
}

// evict drops windows from memory. With storage: closed windows whose figure
// was emitted and whose state (with the emitted mark) is durable. Without:
// closed, emitted windows past restatement_retention, and under memory
// pressure (above 90% of max_series_windows) the oldest closed, emitted ones
// down to 80%, remembering the newest evicted end (values for those windows
// are then refused).
func (p *aggProcessor) evict(nowNs int64) {
	lateness := int64(p.cfg.AllowedLateness)
	ret := int64(p.cfg.RestatementRetention)
	type candidate struct {
		w   *window
		end int64
	}
	var candidates []candidate
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		sh.each(func(w *window) {
			if w.pins > 0 || w.pend != nil {
				return
			}
			if w.version == 0 { // placeholder of a refused or failed batch
				p.drop(sh, w)
				return
			}
			if w.end()+lateness > nowNs || w.emitted != w.version {
				return
			}
			if p.store != nil {
				if w.donePersisted {
					p.drop(sh, w)
				}
				return
			}
			if ret > 0 && w.end() <= nowNs-ret {
				p.drop(sh, w)
				return
			}
			candidates = append(candidates, candidate{w, w.end()})
		})
		sh.mu.Unlock()
	}
	limit := int64(p.cfg.MaxSeriesWindows)
	if p.store != nil || p.inMem.Load()*10 <= limit*9 || len(candidates) == 0 {
		return
	}
	slices.SortFunc(candidates, func(a, b candidate) int { return cmp.Compare(a.end, b.end) })
	excess := p.inMem.Load() - limit*8/10
	var evictedEnd int64
	n := 0
	for _, c := range candidates {
		if int64(n) >= excess {
			break
		}
		w := c.w
		sh := &p.shards[w.shard]
		sh.mu.Lock()
		if sh.holds(w) && w.pins == 0 && w.emitted == w.version {
			// The watermark rises before the window leaves: a value that
			// then misses the window in its shard sees the watermark
			// (resolveOne) and is refused, instead of starting the window
			// anew and publishing its partial figure as the closed one.
			for {
				old := p.evictedBefore.Load()
				if c.end <= old || p.evictedBefore.CompareAndSwap(old, c.end) {
					break
				}
			}
			p.drop(sh, w)
			evictedEnd = max(evictedEnd, c.end)
			n++
		}
		sh.mu.Unlock()
	}
	if n > 0 {
		p.logger.Warn("Memory pressure: evicted closed windows; later values for windows ending at or before the watermark are refused (configure a storage extension to restate them)",
			zap.Int("windows", n), zap.Int64("watermark_unix_nano", evictedEnd))
	}
}

// build turns snapshots into output metrics: one metric per (desc,
// interval, kind), one data point per window with StartTimestamp = window
// start and Timestamp = window end (int64 Unix nanoseconds: before 1970,
// their two's complement), and metadata custommetrics.window naming the kind.
func (p *aggProcessor) build(snaps []snap) pmetric.Metrics {
	slices.SortFunc(snaps, func(a, b snap) int {
		return cmp.Or(cmp.Compare(a.w.d.rs, b.w.d.rs), cmp.Compare(a.w.d.id, b.w.d.id), cmp.Compare(a.w.iv, b.w.iv),
			cmp.Compare(a.kind, b.kind), cmp.Compare(a.w.start, b.w.start), bytes.Compare(a.attrs, b.attrs))
	})
	md := pmetric.NewMetrics()
	var (
		lastD  *desc
		lastRS = "\x00none"
		lastIv = -1
		lastK  emitKind
		sms    pmetric.MetricSlice
		dps    pmetric.NumberDataPointSlice
	)
	for _, s := range snaps {
		w := s.w
		d := w.d
		if d.rs != lastRS {
			rm := md.ResourceMetrics().AppendEmpty()
			d.res.CopyTo(rm.Resource())
			sm := rm.ScopeMetrics().AppendEmpty()
			d.scp.CopyTo(sm.Scope())
			sms = sm.Metrics()
			lastRS = d.rs
		}
		if d != lastD {
			lastD, lastIv = d, -1
		}
		if int(w.iv) != lastIv || s.kind != lastK {
			m := sms.AppendEmpty()
			m.SetName(d.name)
			m.SetUnit(d.unit)
			m.SetDescription(d.dsc)
			d.meta.CopyTo(m.Metadata())
			m.Metadata().PutStr(otelmap.MetaAggregation, d.fn.String())
			m.Metadata().PutStr(otelmap.MetaInterval, w.iv.String())
			m.Metadata().PutStr(otelmap.MetaWindow, windowKinds[s.kind])
			if d.fn.IsSum() {
				sum := m.SetEmptySum()
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				sum.SetIsMonotonic(false)
				dps = sum.DataPoints()
			} else {
				dps = m.SetEmptyGauge().DataPoints()
			}
			lastIv, lastK = int(w.iv), s.kind
		}
		dp := dps.AppendEmpty()
		if _, err := decodeMap(s.attrs, dp.Attributes()); err != nil {
			p.logger.Error("Corrupt series attributes; emitting the figure without them", zap.Error(err))
		}
		dp.SetStartTimestamp(pcommon.Timestamp(w.start))
		dp.SetTimestamp(pcommon.Timestamp(w.end()))
		dp.SetDoubleValue(s.acc.Value(d.fn))
	}
	return md
}

// drop removes w from memory. Caller holds sh.mu.
func (p *aggProcessor) drop(sh *shard, w *window) {
	d := w.d
	sh.del(p.hashOf(sh, w), w)
	p.forget(d)
}
