package aggregateprocessor

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/otelmap"
)

type rawPoint struct {
	metric  int
	key     string
	ts      time.Time
	v, w    float64
	hasW    bool
	arrival int
}

type propMetric struct {
	name string
	fn   aggregation.Func
	iv   calendar.Interval
}

// naive recomputes a window's figure from all its values, independently of
// internal/aggregation.
func naive(fn aggregation.Func, pts []rawPoint) float64 {
	var sum, sumVW, sumW float64
	mn, mx := math.Inf(1), math.Inf(-1)
	first, last := pts[0], pts[0]
	for _, p := range pts {
		sum += p.v
		sumVW += p.v * p.w
		sumW += p.w
		mn, mx = min(mn, p.v), max(mx, p.v)
		if p.ts.Before(first.ts) || (p.ts.Equal(first.ts) && p.arrival < first.arrival) {
			first = p
		}
		if p.ts.After(last.ts) || (p.ts.Equal(last.ts) && p.arrival > last.arrival) {
			last = p
		}
	}
	switch fn {
	case aggregation.Sum:
		return sum
	case aggregation.Count:
		return float64(len(pts))
	case aggregation.Min:
		return mn
	case aggregation.Max:
		return mx
	case aggregation.First:
		return first.v
	case aggregation.Last:
		return last.v
	default:
		if sumW == 0 {
			return math.NaN()
		}
		return sumVW / sumW
	}
}

// TestPropertyLastEmissionEqualsNaiveRecompute feeds random streams (random
// timestamps over several windows, random arrival order and batch splits,
// windows closing in between, and, with storage, crashes and restarts) and
// checks that the last emission of every window equals the naive aggregate of
// all its values.
func TestPropertyLastEmissionEqualsNaiveRecompute(t *testing.T) {
	zones := []string{"", "America/New_York", "Australia/Lord_Howe"}
	for iter := range 200 {
		seed := uint64(iter)
		withStorage := iter%2 == 1
		t.Run(fmt.Sprintf("seed=%d/storage=%v", seed, withStorage), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			zone := zones[rng.IntN(len(zones))]
			cal, err := calendar.LoadCalendar(zone)
			require.NoError(t, err)
			var metrics []propMetric
			for i := range 1 + rng.IntN(5) {
				metrics = append(metrics, propMetric{
					name: fmt.Sprintf("m%d", i),
					fn:   aggregation.Funcs[rng.IntN(len(aggregation.Funcs))],
					iv:   calendar.Intervals[rng.IntN(len(calendar.Intervals))],
				})
			}
			base := time.Date(2020+rng.IntN(6), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, time.UTC)
			var pts []rawPoint
			n := 20 + rng.IntN(300)
			for i := range n {
				m := rng.IntN(len(metrics))
				span := map[calendar.Interval]time.Duration{
					calendar.FiveMinutes: 15 * time.Minute, calendar.Hour: 3 * time.Hour, calendar.Day: 72 * time.Hour,
					calendar.Week: 21 * 24 * time.Hour, calendar.Month: 90 * 24 * time.Hour, calendar.Year: 3 * 365 * 24 * time.Hour,
				}[metrics[m].iv]
				ts := base.Add(time.Duration(rng.Int64N(int64(span))))
				if rng.IntN(5) == 0 && len(pts) > 0 { // exact timestamp ties: arrival breaks them
					ts = pts[rng.IntN(len(pts))].ts
				}
				p := rawPoint{metric: m, key: []string{"", "a", "b"}[rng.IntN(3)], ts: ts, v: float64(rng.IntN(101) - 50), w: 1, arrival: i}
				if rng.IntN(2) == 0 {
					p.hasW, p.w = true, []float64{0.25, 0.5, 1, 2, 4}[rng.IntN(5)]
				}
				pts = append(pts, p)
			}

			sink := new(consumertest.MetricsSink)
			clk := &clock{t: base}
			cfg := defaultCfg()
			cfg.TimeZone = zone
			cfg.AllowedLateness = time.Duration(rng.IntN(2)) * time.Minute
			var store *memStorage
			if withStorage {
				store = newMemStorage()
			}
			newP := func() *aggProcessor {
				var c *memStorage
				if withStorage {
					c = store
				}
				if c == nil {
					return newTestProcessor(t, cfg, sink, clk, nil)
				}
				return newTestProcessor(t, cfg, sink, clk, c)
			}
			p := newP()
			ctx := context.Background()
			for i := 0; i < len(pts); {
				j := min(len(pts), i+1+rng.IntN(40))
				require.NoError(t, p.ConsumeMetrics(ctx, buildBatch(metrics, pts[i:j])))
				i = j
				// Time moves forward (arrival is not ordered by timestamp).
				if rng.IntN(3) == 0 {
					clk.set(clk.now().Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))))
					require.NoError(t, p.tick(ctx, clk.now()))
				}
				if withStorage && rng.IntN(8) == 0 {
					// kill -9: no Shutdown; a new processor on the same storage.
					p.halt()
					p = newP()
				}
			}
			clk.set(base.Add(10 * 365 * 24 * time.Hour))
			require.NoError(t, p.tick(ctx, clk.now()))

			type wk struct {
				metric, key string
				start       int64
			}
			last := map[wk]float64{}
			for _, r := range rows(sink.AllMetrics()...) {
				last[wk{r.metric, r.attrs, r.start.UnixNano()}] = r.value
			}
			groups := map[wk][]rawPoint{}
			for _, p := range pts {
				m := metrics[p.metric]
				s, _ := cal.Window(m.iv, p.ts)
				key := "custommetrics.api=test;||"
				if p.key != "" {
					key = "custommetrics.api=test;|custommetrics.key=" + p.key + ";|"
				}
				groups[wk{m.name, key, s.UnixNano()}] = append(groups[wk{m.name, key, s.UnixNano()}], p)
			}
			require.Len(t, last, len(groups), "one series-window per group of values")
			for k, g := range groups {
				got, ok := last[k]
				require.True(t, ok, "window %v was never emitted", k)
				want := naive(metrics[g[0].metric].fn, g)
				if math.IsNaN(want) {
					require.True(t, math.IsNaN(got), "%v: want NaN, got %v", k, got)
					continue
				}
				require.InDelta(t, want, got, 1e-9, "%v (%s)", k, metrics[g[0].metric].fn)
			}
		})
	}
}

func buildBatch(metrics []propMetric, pts []rawPoint) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(otelmap.AttrAPI, "test")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, p := range pts {
		pm := metrics[p.metric]
		m := ms.AppendEmpty()
		m.SetName(pm.name)
		m.Metadata().PutStr(otelmap.MetaAggregation, pm.fn.String())
		m.Metadata().PutStr(otelmap.MetaInterval, pm.iv.String())
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetDoubleValue(p.v)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(p.ts))
		if p.key != "" {
			dp.Attributes().PutStr(otelmap.AttrKey, p.key)
		}
		if p.hasW {
			dp.Attributes().PutDouble(otelmap.AttrWeight, p.w)
		}
	}
	return md
}
