package anomalyprocessor

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/custommetrics/bundle/internal/pgserver"
	"github.com/custommetrics/bundle/processor/anomalyprocessor/internal/metadata"
)

// Three collectors in cluster mode, fed one series' values round robin (and
// one value twice), score exactly as one collector fed them all: each value
// once, in order, with the state learned from every earlier value.
func TestSharedStatesScoreAsOneCollector(t *testing.T) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)

	shared := func() *Config {
		cfg := createDefaultConfig().(*Config)
		cfg.Metrics = true
		cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
		require.NoError(t, cfg.Validate())
		return cfg
	}
	one := createDefaultConfig().(*Config)
	one.Metrics = true
	single := newTestProc(t, one, nil)
	cluster := []*testProc{newTestProc(t, shared(), nil), newTestProc(t, shared(), nil), newTestProc(t, shared(), nil)}

	var pts []point
	for i := range 600 {
		v := 10 + math.Sin(float64(i)/7)
		if i == 500 {
			v = 40 // a spike, flagged by both
		}
		pts = append(pts, point{metric: "orders", resource: "a", ts: t0.Add(time.Duration(i) * time.Hour), v: v})
	}
	for i, pt := range pts {
		single.consume(t, pt)
		cluster[i%3].consume(t, pt)
		if i == 300 {
			cluster[(i+1)%3].consume(t, pt) // again, elsewhere: not learned twice, scored the same
		}
	}
	want := single.points("orders" + scoreSuffix)
	var got []outPoint
	for _, c := range cluster {
		got = append(got, c.points("orders"+scoreSuffix)...)
	}
	require.NotEmpty(t, want)
	require.Equal(t, len(want)+1, len(got), "each value scored once; the one delivered twice, twice")
	byTime := map[time.Time]float64{}
	for _, p := range got {
		if v, twice := byTime[p.ts]; twice {
			assert.Equal(t, pts[300].ts, p.ts)
			assert.Equal(t, v, p.v, "the second delivery gets the first one's score")
		}
		byTime[p.ts] = p.v
	}
	for _, p := range want {
		assert.Equal(t, p.v, byTime[p.ts], "score at %s", p.ts)
	}
	flags := 0
	for _, c := range cluster {
		for _, p := range c.points("orders" + flagSuffix) {
			flags += int(p.v)
		}
	}
	assert.Positive(t, flags, "the spike is flagged")
}

// Concurrent batches of one series on several collectors are serialised by
// the series' lock: no deadlock, no error, and the state ends at the latest
// value (each value is learned at most once, and only after every value
// learned before it).
func TestSharedStatesConcurrentBatches(t *testing.T) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	var procs []*testProc
	for range 3 {
		cfg := createDefaultConfig().(*Config)
		cfg.Metrics = true
		cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
		procs = append(procs, newTestProc(t, cfg, nil))
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				pt := point{metric: "m", resource: "r", ts: t0.Add(time.Duration(i*6+w) * time.Minute), v: float64(i)}
				procs[(w+i)%3].consume(t, pt)
			}
		}()
	}
	wg.Wait()
	var s series
	var raw []byte
	require.NoError(t, procs[0].p.shared.pool.QueryRow(t.Context(), "SELECT state FROM anomaly_states").Scan(&raw))
	require.NoError(t, s.unmarshalBinary(raw))
	assert.LessOrEqual(t, s.st.Count(), int64(300))
	assert.Equal(t, t0.Add(299*time.Minute).UnixNano(), s.lastTS, "the latest value was learned")
}

// Locks are taken in lock-id order, whatever the keys' own order: two
// batches sharing locks take them in the same order.
func TestSharedLocksInLockOrder(t *testing.T) {
	keys := []seriesKey{{a: 1, b: 6}, {a: 2, b: 0}, {a: 0, b: 7}, {a: 3, b: 0}}
	sortForLocks(keys)
	var ids []int64
	for _, k := range keys {
		ids = append(ids, k.lockID())
	}
	assert.Equal(t, []int64{2, 3, 7, 7}, ids)
	assert.Equal(t, seriesKey{a: 0, b: 7}, keys[2], "ties in key order")
}

// Quiet states leave the shared table, but the delete (which reads the
// whole table) runs on a collector at most every series_ttl/100.
func TestSharedStatesExpire(t *testing.T) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	cfg := createDefaultConfig().(*Config)
	cfg.LearningPeriod = 0
	cfg.SeriesTTL = 100 * time.Hour
	cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
	require.NoError(t, cfg.Validate())
	tp := newTestProc(t, cfg, nil)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tp.p.now = func() time.Time { return clock }
	states := func() (n int) {
		require.NoError(t, tp.p.shared.pool.QueryRow(context.Background(), `SELECT count(*) FROM anomaly_states`).Scan(&n))
		return n
	}

	tp.consume(t, point{metric: "a", ts: t0, v: 1})
	require.Equal(t, 1, states())
	clock = clock.Add(cfg.SeriesTTL + time.Minute)
	tp.p.maintain(context.Background())
	assert.Zero(t, states(), "quiet for series_ttl: deleted")

	tp.consume(t, point{metric: "b", ts: t0, v: 1}) // seen now...
	clock = clock.Add(cfg.SeriesTTL/100 - time.Minute)
	_, err = tp.p.shared.pool.Exec(context.Background(), `UPDATE anomaly_states SET seen_unix_nano = 0`) // ...and quiet since 1970
	require.NoError(t, err)
	tp.p.maintain(context.Background())
	assert.Equal(t, 1, states(), "not yet: the last delete ran less than series_ttl/100 ago")
	clock = clock.Add(time.Minute)
	tp.p.maintain(context.Background())
	assert.Zero(t, states())
}

// BenchmarkSharedScoring: concurrent single-point batches (raw points, as a
// BigFix post makes) of distinct series, scored in cluster mode.
//
// go test -run '^$' -bench SharedScoring ./processor/anomalyprocessor/
func BenchmarkSharedScoring(b *testing.B) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(b, err)
	b.Cleanup(srv.Remove)
	cfg := createDefaultConfig().(*Config)
	cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
	p, err := newProcessor(processortest.NewNopSettings(metadata.Type), cfg)
	require.NoError(b, err)
	require.NoError(b, p.start(context.Background(), componenttest.NewNopHost()))
	b.Cleanup(func() { _ = p.shutdown(context.Background()) })
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		series := fmt.Sprint(next.Add(1))
		for i := 0; pb.Next(); i++ {
			md := batch(point{metric: "tag.deployments", attrs: map[string]any{"k": series}, ts: t0.Add(time.Duration(i) * time.Second), v: float64(i % 7)})
			if _, err := p.processMetrics(context.Background(), md); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}

// A round's batches go, in order, into transactions of at most max series.
func TestSplitRound(t *testing.T) {
	batchOf := func(ks ...uint64) *scoring {
		sc := &scoring{tenants: map[seriesKey]string{}}
		for _, k := range ks {
			sc.tenants[seriesKey{a: k}] = ""
		}
		return sc
	}
	scs := []*scoring{batchOf(1, 2), batchOf(2, 3), batchOf(4), batchOf(5, 6, 7, 8, 9), batchOf(1)}
	var sizes [][2]int // batches, series
	for _, g := range splitRound(scs, 4) {
		sizes = append(sizes, [2]int{len(g.scs), len(g.keys)})
	}
	assert.Equal(t, [][2]int{{3, 4}, {1, 5}, {1, 1}}, sizes, "a shared series counts once; a larger batch goes alone")
}

// A batch whose series is locked elsewhere for longer than lock_timeout
// fails and learns nothing; the batches queued meanwhile, more series than
// one transaction takes, are all scored.
func TestSharedRoundWaitsBounded(t *testing.T) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	defer func(n int, d string) { maxRoundSeries, lockTimeout = n, d }(maxRoundSeries, lockTimeout)
	maxRoundSeries, lockTimeout = 4, "300ms"
	cfg := createDefaultConfig().(*Config)
	cfg.LearningPeriod = 0
	cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
	tp := newTestProc(t, cfg, nil)
	ctx := context.Background()
	pool := tp.p.shared.pool
	tp.consume(t, point{metric: "held", ts: t0, v: 1})
	var key, state []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT series, state FROM anomaly_states`).Scan(&key, &state))
	lock := int64(binary.BigEndian.Uint64(key) ^ binary.BigEndian.Uint64(key[8:]))
	count := func() int64 {
		require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM anomaly_states WHERE series = $1`, key).Scan(&state))
		var s series
		require.NoError(t, s.unmarshalBinary(state))
		return s.st.Count()
	}

	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() { // queued behind the held round
			defer wg.Done()
			time.Sleep(50 * time.Millisecond)
			errs[i] = tp.ConsumeMetrics(ctx, batch(
				point{metric: "m", attrs: map[string]any{"k": fmt.Sprint(i, "a")}, ts: t0, v: 1},
				point{metric: "m", attrs: map[string]any{"k": fmt.Sprint(i, "b")}, ts: t0, v: 1},
				point{metric: "m", attrs: map[string]any{"k": fmt.Sprint(i, "c")}, ts: t0, v: 1}))
		}()
	}
	err = tp.ConsumeMetrics(ctx, batch(point{metric: "held", ts: t0.Add(time.Minute), v: 2}))
	require.Error(t, err, "the series' lock was held past lock_timeout")
	wg.Wait()
	require.NoError(t, holder.Rollback(ctx))
	for _, err := range errs {
		assert.NoError(t, err)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM anomaly_states`).Scan(&n))
	assert.Equal(t, 61, n, "every queued series scored")
	assert.EqualValues(t, 1, count(), "the failed batch learned nothing")
	tp.consume(t, point{metric: "held", ts: t0.Add(time.Minute), v: 2})
	assert.EqualValues(t, 2, count(), "sent again, it is learned")
}
