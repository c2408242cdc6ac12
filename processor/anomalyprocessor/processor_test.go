package anomalyprocessor

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func defaultCfg() *Config { return createDefaultConfig().(*Config) }

// noisy returns n values around 100 (sd 1), deterministic.
func noisy(seed uint64, n int) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float64, n)
	for i := range v {
		v[i] = 100 + r.NormFloat64()
	}
	return v
}

func TestSpikeIsFlagged(t *testing.T) {
	tp := newTestProc(t, defaultCfg(), nil)
	vals := noisy(1, 600)
	const spike = 500
	vals[spike] += 25
	for i, v := range vals {
		tp.consume(t, point{metric: "app.latency", resource: "a", attrs: map[string]any{"route": "/x"}, ts: t0.Add(time.Duration(i) * time.Minute), v: v})
	}
	scores := tp.points("app.latency" + scoreSuffix)
	flags := tp.points("app.latency" + flagSuffix)
	// scored (and emitted) only after the learning period of 300 values
	require.Len(t, scores, 600-300)
	require.Len(t, flags, 600-300)
	var flagged []int
	for i, f := range flags {
		idx := 300 + i
		assert.Equal(t, t0.Add(time.Duration(idx)*time.Minute), f.ts, "same timestamp as the scored point")
		assert.Equal(t, map[string]any{"route": "/x"}, f.attrs, "same attributes as the scored point")
		assert.Equal(t, "a", f.resource)
		if f.v == 1 {
			flagged = append(flagged, idx)
		}
		s := scores[i].v
		assert.True(t, s >= 0 && s <= 1, "score %v in [0,1]", s)
	}
	assert.Equal(t, []int{spike}, flagged)
	assert.GreaterOrEqual(t, scores[spike-300].v, 0.5)
	assert.EqualValues(t, 300, tp.counter(t, "points_scored"))
	assert.EqualValues(t, 1, tp.counter(t, "points_flagged"))
	assert.EqualValues(t, 1, tp.counter(t, "series"))

	// the original metric passed through unchanged
	orig := tp.points("app.latency")
	require.Len(t, orig, 600)
	assert.Equal(t, vals[spike], orig[spike].v)
	assert.Equal(t, map[string]any{"route": "/x"}, orig[spike].attrs)
}

func TestFlatAndSeasonalSeriesAreNotFlagged(t *testing.T) {
	tp := newTestProc(t, defaultCfg(), nil)
	r := rand.New(rand.NewPCG(7, 7))
	const n = 4 * 288 // four days at 5 minutes
	var pts []point
	for i := 0; i < n; i++ {
		ts := t0.Add(time.Duration(i) * 5 * time.Minute)
		day := 2 * math.Pi * float64(ts.Unix()%86400) / 86400
		pts = append(pts,
			point{metric: "flat", resource: "a", ts: ts, v: 42},
			point{metric: "seasonal", resource: "a", ts: ts, v: 1000 + 300*math.Sin(day) + 5*r.NormFloat64()})
		if len(pts) == 100 || i == n-1 {
			tp.consume(t, pts...)
			pts = pts[:0]
		}
	}
	for _, m := range []string{"flat", "seasonal"} {
		flags := tp.points(m + flagSuffix)
		require.Len(t, flags, n-300, m)
		nf := 0
		for _, f := range flags {
			nf += int(f.v)
		}
		assert.LessOrEqual(t, nf, n/1000+1, "%s: %d false alarms", m, nf)
	}
	for _, s := range tp.points("flat" + scoreSuffix) {
		require.Zero(t, s.v, "a flat line scores 0")
	}
}

func TestIncludeExclude(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 1
	cfg.Include = MatchConfig{Names: []string{"db.calls"}, Regexps: []string{`^app\.`}}
	cfg.Exclude = MatchConfig{Names: []string{"app.skip"}}
	tp := newTestProc(t, cfg, nil)
	for i := 0; i < 3; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		var pts []point
		for _, m := range []string{"app.a", "app.skip", "db.calls", "db.other", "xapp.b"} {
			pts = append(pts, point{metric: m, resource: "r", ts: ts, v: float64(i)})
		}
		tp.consume(t, pts...)
	}
	last := tp.sink.AllMetrics()[2]
	assert.Equal(t, []string{
		"app.a", "app.a.anomaly.flag", "app.a.anomaly.score", "app.skip",
		"db.calls", "db.calls.anomaly.flag", "db.calls.anomaly.score", "db.other", "xapp.b",
	}, metricNames(last))
}

func TestDefaultSelectsGaugesAndSumsOnly(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	tp := newTestProc(t, cfg, nil)
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("g")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(3)
	s := ms.AppendEmpty()
	s.SetName("s")
	sp := s.SetEmptySum().DataPoints().AppendEmpty()
	sp.SetDoubleValue(1.5)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	sp.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Hour)))
	h := ms.AppendEmpty()
	h.SetName("h")
	h.SetEmptyHistogram().DataPoints().AppendEmpty().SetCount(3)
	nv := ms.AppendEmpty()
	nv.SetName("novalue")
	nv.SetEmptyGauge().DataPoints().AppendEmpty().SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	want := pmetric.NewMetrics()
	md.CopyTo(want)
	require.NoError(t, tp.ConsumeMetrics(context.Background(), md))
	got := tp.sink.AllMetrics()[0]
	assert.Equal(t, []string{"g", "g.anomaly.flag", "g.anomaly.score", "h", "novalue", "s", "s.anomaly.flag", "s.anomaly.score"}, metricNames(got))
	// originals unchanged, outputs appended after them
	gotMs := got.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	wantMs := want.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := 0; i < wantMs.Len(); i++ {
		assert.Equal(t, wantMs.At(i), gotMs.At(i))
	}
	// a window point (start = window start, timestamp = window end) keeps both
	ss := tp.points("s" + scoreSuffix)
	require.Len(t, ss, 1)
	assert.Equal(t, t0.Add(time.Hour), ss[0].ts)
	sm := gotMs.At(gotMs.Len() - 2)
	assert.Equal(t, "s.anomaly.score", sm.Name())
	assert.Equal(t, "1", sm.Unit())
	assert.Equal(t, pcommon.NewTimestampFromTime(t0), sm.Gauge().DataPoints().At(0).StartTimestamp())
}

func TestAttributesMode(t *testing.T) {
	cfg := defaultCfg()
	cfg.Metrics = false
	cfg.Attributes = true
	tp := newTestProc(t, cfg, nil)
	vals := noisy(3, 400)
	vals[350] = 200
	for i, v := range vals {
		tp.consume(t, point{metric: "m", resource: "r", attrs: map[string]any{"k": "v"}, ts: t0.Add(time.Duration(i) * time.Minute), v: v})
	}
	for _, md := range tp.sink.AllMetrics() {
		assert.Equal(t, []string{"m"}, metricNames(md), "no extra metrics")
	}
	pts := tp.points("m")
	require.Len(t, pts, 400)
	assert.Equal(t, map[string]any{"k": "v"}, pts[299].attrs, "no attributes during learning")
	a := pts[350].attrs
	assert.Equal(t, true, a["anomaly.flag"])
	assert.GreaterOrEqual(t, a["anomaly.score"], 0.5)
	assert.InDelta(t, 100, a["anomaly.expected"], 2)
	assert.Less(t, a["anomaly.lower"], a["anomaly.expected"])
	assert.Greater(t, a["anomaly.upper"], a["anomaly.expected"])
	assert.Equal(t, 200.0, pts[350].v, "value unchanged")
	assert.Equal(t, false, pts[351].attrs["anomaly.flag"])
	assert.Equal(t, "v", pts[351].attrs["k"])
}

func TestSeriesAreIndependent(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 100
	tp := newTestProc(t, cfg, nil)
	a, b, c := noisy(4, 300), noisy(5, 300), noisy(6, 300)
	for i := range a {
		b[i] += 1000 // a different level: would be anomalous in a's series
	}
	a[250] += 30
	for i := range a {
		ts := t0.Add(time.Duration(i) * time.Minute)
		tp.consume(t,
			point{metric: "m", resource: "r1", attrs: map[string]any{"k": "a", "z": 1}, ts: ts, v: a[i]},
			point{metric: "m", resource: "r1", attrs: map[string]any{"z": 1, "k": "b"}, ts: ts, v: b[i]},
			point{metric: "m", resource: "r2", attrs: map[string]any{"k": "a", "z": 1}, ts: ts, v: c[i]})
	}
	assert.EqualValues(t, 3, tp.counter(t, "series"))
	flagged := map[string][]time.Time{}
	for _, f := range tp.points("m" + flagSuffix) {
		if f.v == 1 {
			flagged[f.resource+"/"+f.attrs["k"].(string)] = append(flagged[f.resource+"/"+f.attrs["k"].(string)], f.ts)
		}
	}
	assert.Equal(t, []time.Time{t0.Add(250 * time.Minute)}, flagged["r1/a"])
	assert.Empty(t, flagged["r1/b"], "a series 1000 above the other is not anomalous in its own history")
	for _, ts := range flagged["r2/a"] { // same attributes, other resource: own history
		assert.NotEqual(t, t0.Add(250*time.Minute), ts)
	}
}

// TestRepeatedPointsAreNotLearnedTwice: the last point again, with its value
// (the aggregate processor emits a window again when its export failed), gets
// the same outputs again; a late point, or the last timestamp with another
// value (a restatement), passes through unscored. None is learned twice.
func TestRepeatedPointsAreNotLearnedTwice(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	cfg.Metrics = true
	tp := newTestProc(t, cfg, nil)
	vs := noisy(7, 60)
	for i, v := range vs {
		tp.consume(t, point{metric: "m", ts: t0.Add(time.Duration(i) * time.Minute), v: v})
	}
	spike := point{metric: "m", ts: t0.Add(60 * time.Minute), v: 150}
	tp.consume(t, spike)
	learned := tp.p.state(t, "m", "", nil).Count()
	tp.consume(t, spike)                                                  // re-emitted
	tp.consume(t, point{metric: "m", ts: spike.ts, v: 151})               // restated
	tp.consume(t, point{metric: "m", ts: t0.Add(30 * time.Minute), v: 1}) // late
	assert.Equal(t, learned, tp.p.state(t, "m", "", nil).Count(), "nothing learned again")

	scores, flags := tp.points("m"+scoreSuffix), tp.points("m"+flagSuffix)
	require.Len(t, scores, len(vs)+2, "every value once, and the spike twice")
	first, again := scores[len(scores)-2], scores[len(scores)-1]
	assert.Equal(t, spike.ts, again.ts)
	assert.Equal(t, first, again, "the same score")
	assert.Greater(t, again.v, 0.9)
	assert.Equal(t, []float64{1, 1}, []float64{flags[len(flags)-2].v, flags[len(flags)-1].v}, "flagged both times")
	assert.EqualValues(t, len(vs)+1, tp.counter(t, "points_scored"), "the repeat is not counted again")
	flagged := tp.counter(t, "points_flagged")

	tp.consume(t, spike) // again
	assert.Equal(t, flagged, tp.counter(t, "points_flagged"), "one flag, however often it is re-emitted")
	tp.consume(t, point{metric: "m", ts: t0.Add(61 * time.Minute), v: 100})
	assert.Len(t, tp.points("m"+scoreSuffix), len(vs)+4)
}

// TestPointsBefore1970AreScored: a timestamp before the epoch is negative;
// the first point of a series comes after "no point yet" all the same.
func TestPointsBefore1970AreScored(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	cfg.Metrics = true
	tp := newTestProc(t, cfg, nil)
	start := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		tp.consume(t, point{metric: "m", ts: start.Add(time.Duration(i) * time.Hour), v: 1})
	}
	assert.Len(t, tp.points("m"+scoreSuffix), 3)
	assert.EqualValues(t, 3, tp.p.state(t, "m", "", nil).Count())
}

func TestLearningDuration(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 10
	cfg.LearningDuration = time.Hour
	tp := newTestProc(t, cfg, nil)
	for i := 0; i <= 70; i++ {
		tp.consume(t, point{metric: "m", ts: t0.Add(time.Duration(i) * time.Minute), v: 1})
	}
	scores := tp.points("m" + scoreSuffix)
	require.Len(t, scores, 11, "scored from the value one hour after the first")
	assert.Equal(t, t0.Add(time.Hour), scores[0].ts)
}

func TestMaxSeries(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 0
	cfg.MaxSeries = 2
	tp := newTestProc(t, cfg, nil)
	for i := 0; i < 3; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		tp.consume(t,
			point{metric: "m", attrs: map[string]any{"k": "1"}, ts: ts, v: 1},
			point{metric: "m", attrs: map[string]any{"k": "2"}, ts: ts, v: 1},
			point{metric: "m", attrs: map[string]any{"k": "3"}, ts: ts, v: 1})
	}
	assert.Len(t, tp.points("m"+scoreSuffix), 6, "two series scored")
	assert.Len(t, tp.points("m"), 9, "every point passed through")
	for _, s := range tp.points("m" + scoreSuffix) {
		assert.NotEqual(t, "3", s.attrs["k"])
	}
	assert.EqualValues(t, 3, tp.counter(t, "points_unscored"))
	assert.EqualValues(t, 3, tp.counterWith(t, "points_unscored", "reason", "max_series"))
	assert.EqualValues(t, 2, tp.counter(t, "series"))
}

func TestEvictionAfterTTL(t *testing.T) {
	st := newMemStorage(true)
	cfg := defaultCfg()
	cfg.LearningPeriod = 5
	cfg.SeriesTTL = time.Hour
	cfg.SnapshotInterval = time.Hour // maintenance is driven by the test
	id := memStorageID
	cfg.Storage = &id
	tp := newTestProc(t, cfg, hostWith(st))
	var mu sync.Mutex
	clock := t0
	tp.p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	for i := 0; i < 10; i++ {
		tp.consume(t, point{metric: "quiet", ts: t0.Add(time.Duration(i) * time.Minute), v: 1},
			point{metric: "busy", ts: t0.Add(time.Duration(i) * time.Minute), v: 1})
	}
	tp.p.maintain(context.Background())
	assert.Len(t, st.keys(), 2)
	advance(50 * time.Minute)
	tp.consume(t, point{metric: "busy", ts: t0.Add(50 * time.Minute), v: 1})
	advance(20 * time.Minute) // quiet: 70 minutes, busy: 20 minutes
	tp.p.maintain(context.Background())
	assert.Len(t, st.keys(), 1, "the quiet series is deleted from storage")
	assert.EqualValues(t, 1, tp.counter(t, "series_evicted"))
	assert.EqualValues(t, 1, tp.counter(t, "series"))
	assert.EqualValues(t, 1, tp.p.nSeries.Load())
	// a quiet series that comes back learns again
	tp.consume(t, point{metric: "quiet", ts: t0.Add(70 * time.Minute), v: 1})
	assert.EqualValues(t, 1, tp.p.state(t, "quiet", "", nil).Count())
	assert.EqualValues(t, 11, tp.p.state(t, "busy", "", nil).Count())
}

// state returns the detector state of a series (white box).
func (p *anomalyProcessor) state(t *testing.T, metric, resource string, attrs map[string]any) *series {
	t.Helper()
	r := pcommon.NewResource()
	r.Attributes().PutStr("host", resource)
	a := pcommon.NewMap()
	require.NoError(t, a.FromRaw(attrs))
	k := pointKey(metricKey(hashMap(0, r.Attributes(), false), metric), hashMap(0, a, true))
	sh := &p.shards[k.a%nShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[k]
	require.NotNil(t, s, "series %s", metric)
	return s
}

func (s *series) Count() int64 { return s.st.Count() }

// TestSnapshotSurvivesCrash: a processor that is never shut down (as after
// kill -9) has still written its states at the snapshot interval; a new
// processor on the same storage continues without a learning period.
func TestSnapshotSurvivesCrash(t *testing.T) {
	for _, walkable := range []bool{true, false} {
		t.Run(map[bool]string{true: "walk", false: "lazy"}[walkable], func(t *testing.T) {
			st := newMemStorage(walkable)
			cfg := defaultCfg()
			cfg.LearningPeriod = 100
			cfg.SnapshotInterval = 20 * time.Millisecond
			id := memStorageID
			cfg.Storage = &id
			first := newTestProc(t, cfg, hostWith(st))
			vals := noisy(9, 200)
			for i := 0; i < 150; i++ {
				first.consume(t, point{metric: "m", resource: "r", ts: t0.Add(time.Duration(i) * time.Minute), v: vals[i]})
			}
			require.Eventually(t, func() bool {
				b := st.get(storageKey(firstKey(first.p)))
				s := new(series)
				return b != nil && s.unmarshalBinary(b) == nil && s.Count() == 150
			}, 5*time.Second, 10*time.Millisecond)

			second := newTestProc(t, cfg, hostWith(st))
			second.consume(t, point{metric: "m", resource: "r", ts: t0.Add(150 * time.Minute), v: vals[150]})
			require.Len(t, second.points("m"+scoreSuffix), 1, "scored at once: no new learning period")
			assert.EqualValues(t, 151, second.p.state(t, "m", "r", nil).Count())
			// a repeated point from before the crash is not learned twice
			second.consume(t, point{metric: "m", resource: "r", ts: t0.Add(149 * time.Minute), v: vals[149]})
			assert.EqualValues(t, 151, second.p.state(t, "m", "r", nil).Count())
		})
	}
}

func firstKey(p *anomalyProcessor) seriesKey {
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			sh.mu.Unlock()
			return k
		}
		sh.mu.Unlock()
	}
	return seriesKey{}
}

func TestSnapshotFailureIsRetried(t *testing.T) {
	st := newMemStorage(true)
	cfg := defaultCfg()
	cfg.SnapshotInterval = time.Hour
	id := memStorageID
	cfg.Storage = &id
	tp := newTestProc(t, cfg, hostWith(st))
	tp.consume(t, point{metric: "m", ts: t0, v: 1})
	st.failWrites(true)
	tp.p.maintain(context.Background())
	assert.Empty(t, st.keys())
	assert.EqualValues(t, 1, tp.counter(t, "storage_errors"))
	st.failWrites(false)
	tp.p.maintain(context.Background())
	assert.Len(t, st.keys(), 1)
}

func TestMissingStorageExtension(t *testing.T) {
	cfg := defaultCfg()
	id := component.MustNewID("nope")
	cfg.Storage = &id
	p, err := newProcessor(nopSettings(), cfg)
	require.NoError(t, err)
	err = p.start(context.Background(), hostWith(newMemStorage(true)))
	require.ErrorContains(t, err, `storage extension "nope" not found`)
	require.NoError(t, p.shutdown(context.Background()))
}

func TestConcurrentConsume(t *testing.T) {
	cfg := defaultCfg()
	cfg.LearningPeriod = 10
	tp := newTestProc(t, cfg, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				ts := t0.Add(time.Duration(i) * time.Minute)
				// shared series and per-goroutine series
				assert.NoError(t, tp.ConsumeMetrics(context.Background(), batch(
					point{metric: "shared", attrs: map[string]any{"i": int64(i % 5)}, ts: ts, v: float64(i)},
					point{metric: "own", attrs: map[string]any{"g": int64(g)}, ts: ts, v: float64(i)})))
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 13, tp.p.nSeries.Load())
	for g := 0; g < 8; g++ {
		assert.EqualValues(t, 200, tp.p.state(t, "own", "", map[string]any{"g": int64(g)}).Count())
	}
}
