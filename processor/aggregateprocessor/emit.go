package aggregateprocessor // import "github.com/custommetrics/bundle/processor/aggregateprocessor"

import (
	"bytes"
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/windows"
)

var windowKinds = [...]string{windows.Running: otelmap.WindowRunning, windows.Final: otelmap.WindowClosed, windows.Restatement: otelmap.WindowRestatement}

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
	snaps := p.windows.Due(nowNs, p.runningDue(nowNs, all))
	for _, round := range roundsOf(snaps) {
		if err := p.next.ConsumeMetrics(ctx, p.build(round)); err != nil {
			return err // this round and the later ones stay due
		}
		p.windows.Emitted(round)
		p.countEmitted(ctx, round)
	}
	if n, watermark := p.windows.Evict(nowNs); n > 0 {
		p.logger.Warn("Memory pressure: evicted closed windows; later values for windows ending at or before the watermark are refused (configure a storage extension to restate them)",
			zap.Int("windows", n), zap.Int64("watermark_unix_nano", watermark))
	}
	return nil
}

// roundsOf splits due figures into emissions that carry at most one closing
// figure per series: the first closing figure of each series (with every
// running figure and restatement), then the second, and so on. A failed
// emission then leaves at most one scored window per series to emit again,
// and the anomaly processor gives a series' last point, emitted again, the
// result it had (it does not keep older ones). Mostly there is one round.
func roundsOf(snaps []windows.Snap) [][]windows.Snap {
	// Mostly every closing figure of a metric and interval is of one window
	// start (the windows that just closed): then no series has two.
	type metricIv struct {
		d  *windows.Desc
		iv calendar.Interval
	}
	starts := map[metricIv]int64{}
	one := true
	for i := range snaps {
		if snaps[i].Kind != windows.Final {
			continue
		}
		k := metricIv{snaps[i].Desc, snaps[i].Interval}
		if st, ok := starts[k]; !ok {
			starts[k] = snaps[i].Start
		} else if st != snaps[i].Start {
			one = false
			break
		}
	}
	if one {
		if len(snaps) == 0 {
			return nil
		}
		return [][]windows.Snap{snaps}
	}
	// Otherwise rank each series' closing figures by start: sort them by
	// series (its attributes by hash: two series that collide only share
	// rounds they did not need), then start.
	hash := make([]uint64, len(snaps))
	finals := make([]int, 0, len(snaps))
	for i := range snaps {
		if snaps[i].Kind == windows.Final {
			hash[i] = maphash.Bytes(roundSeed, snaps[i].Attrs)
			finals = append(finals, i)
		}
	}
	slices.SortFunc(finals, func(a, b int) int {
		x, y := &snaps[a], &snaps[b]
		return cmp.Or(cmp.Compare(x.Desc.ID(), y.Desc.ID()), cmp.Compare(x.Interval, y.Interval),
			cmp.Compare(hash[a], hash[b]), cmp.Compare(x.Start, y.Start))
	})
	rank := make([]int, len(snaps))
	n := 1
	for j, i := range finals {
		if j > 0 {
			p := finals[j-1]
			if snaps[p].Desc == snaps[i].Desc && snaps[p].Interval == snaps[i].Interval && hash[p] == hash[i] {
				rank[i] = rank[p] + 1
				n = max(n, rank[i]+1)
			}
		}
	}
	sizes := make([]int, n)
	for _, r := range rank {
		sizes[r]++
	}
	rounds := make([][]windows.Snap, n)
	for r := range rounds {
		rounds[r] = make([]windows.Snap, 0, sizes[r])
	}
	for i := range snaps {
		rounds[rank[i]] = append(rounds[rank[i]], snaps[i])
	}
	return rounds
}

var roundSeed = maphash.MakeSeed()

// countEmitted counts the figures that went out, by kind.
func (p *aggProcessor) countEmitted(ctx context.Context, snaps []windows.Snap) {
	var n [len(windowKinds)]int64
	for i := range snaps {
		n[snaps[i].Kind]++
	}
	p.tel.ProcessorAggregateWindowsEmitted.Add(ctx, n[windows.Final])
	p.tel.ProcessorAggregateRestatementsEmitted.Add(ctx, n[windows.Restatement])
	p.tel.ProcessorAggregateRunningEmitted.Add(ctx, n[windows.Running])
}

// build turns snapshots into output metrics: one metric per (desc,
// interval, kind), one data point per window with StartTimestamp = window
// start and Timestamp = window end (int64 Unix nanoseconds: before 1970,
// their two's complement), and metadata custommetrics.window naming the kind.
func (p *aggProcessor) build(snaps []windows.Snap) pmetric.Metrics {
	slices.SortFunc(snaps, func(a, b windows.Snap) int {
		return cmp.Or(cmp.Compare(a.Desc.ResourceScope(), b.Desc.ResourceScope()), cmp.Compare(a.Desc.ID(), b.Desc.ID()),
			cmp.Compare(a.Interval, b.Interval), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Start, b.Start), bytes.Compare(a.Attrs, b.Attrs))
	})
	md := pmetric.NewMetrics()
	var (
		lastD  *windows.Desc
		lastRS = "\x00none"
		lastIv = -1
		lastK  windows.Kind
		sms    pmetric.MetricSlice
		dps    pmetric.NumberDataPointSlice
	)
	for _, s := range snaps {
		d := s.Desc
		if d.ResourceScope() != lastRS {
			rm := md.ResourceMetrics().AppendEmpty()
			d.Resource.CopyTo(rm.Resource())
			sm := rm.ScopeMetrics().AppendEmpty()
			d.Scope.CopyTo(sm.Scope())
			sms = sm.Metrics()
			lastRS = d.ResourceScope()
		}
		if d != lastD {
			lastD, lastIv = d, -1
		}
		if int(s.Interval) != lastIv || s.Kind != lastK {
			m := sms.AppendEmpty()
			m.SetName(d.Name)
			m.SetUnit(d.Unit)
			m.SetDescription(d.Description)
			d.Meta.CopyTo(m.Metadata())
			m.Metadata().PutStr(otelmap.MetaAggregation, d.Fn.String())
			m.Metadata().PutStr(otelmap.MetaInterval, s.Interval.String())
			m.Metadata().PutStr(otelmap.MetaWindow, windowKinds[s.Kind])
			if d.Fn.IsSum() {
				sum := m.SetEmptySum()
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
				sum.SetIsMonotonic(false)
				dps = sum.DataPoints()
			} else {
				dps = m.SetEmptyGauge().DataPoints()
			}
			lastIv, lastK = int(s.Interval), s.Kind
		}
		dp := dps.AppendEmpty()
		if _, err := windows.DecodeMap(s.Attrs, dp.Attributes()); err != nil {
			p.logger.Error("Corrupt series attributes; emitting the figure without them", zap.Error(err))
		}
		dp.SetStartTimestamp(pcommon.Timestamp(s.Start))
		dp.SetTimestamp(pcommon.Timestamp(s.End))
		dp.SetDoubleValue(s.Acc.Value(d.Fn))
	}
	return md
}
