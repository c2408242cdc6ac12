package aggregateprocessor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/figures"
	"github.com/custommetrics/bundle/internal/otelmap"
	"github.com/custommetrics/bundle/internal/pgserver"
	"github.com/custommetrics/bundle/internal/pgwindows"
	"github.com/custommetrics/bundle/internal/windows"
)

// sharedCollectors starts n processors in cluster mode on one private
// PostgreSQL server, as n collectors with the same config would be; tests
// drive their clocks and ticks.
func sharedCollectors(t *testing.T, n int, clk *clock) ([]*aggProcessor, []*consumertest.MetricsSink, *pgserver.Server) {
	t.Helper()
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	var ps []*aggProcessor
	var sinks []*consumertest.MetricsSink
	for range n {
		cfg := defaultCfg()
		cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
		cfg.CheckInterval = time.Hour // ticks are the test's
		sink := new(consumertest.MetricsSink)
		p := newTestProcessor(t, cfg, sink, clk, nil)
		require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
		t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
		ps = append(ps, p)
		sinks = append(sinks, sink)
	}
	return ps, sinks, srv
}

// postShared sends one value to p and returns the figure p reports for its window.
func postShared(t *testing.T, p *aggProcessor, at time.Time, v float64) (float64, error) {
	ctx, slot := figures.NewContext(context.Background())
	if err := p.ConsumeMetrics(ctx, valueBatch("orders", "sum", at, 0, "acme", v)); err != nil {
		return 0, err
	}
	f, ok := slot.Find("orders", 2) // hour
	require.True(t, ok)
	return f.State.Value(1), nil // sum
}

func emitted(sinks []*consumertest.MetricsSink) []row {
	var out []row
	for _, s := range sinks {
		out = append(out, rows(s.AllMetrics()...)...)
	}
	return out
}

// Values posted to any collector add up in one window; each answer holds
// every value acknowledged before it, on any collector; the closed window is
// emitted once, by one collector, and a late value once more as a
// restatement with the complete figure.
func TestSharedWindowsAcrossCollectors(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 15, 0, 0, time.UTC)
	clk := &clock{t: at}
	ps, sinks, _ := sharedCollectors(t, 3, clk)

	total := 0.0
	for i := range 9 {
		total += float64(i + 1)
		got, err := postShared(t, ps[i%3], at, float64(i+1))
		require.NoError(t, err)
		assert.Equal(t, total, got, "the answer of collector %d holds every earlier value", i%3)
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := postShared(t, ps[i%3], at, 1)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	total += 30

	clk.set(at.Add(2 * time.Hour))
	for _, p := range ps {
		require.NoError(t, p.tick(context.Background(), clk.now()))
	}
	got := emitted(sinks)
	require.Len(t, got, 1, "one emission for the three collectors")
	assert.Equal(t, total, got[0].value)
	assert.Equal(t, at.Truncate(time.Hour), got[0].start)

	// A late value on another collector: one restatement, complete.
	_, err := postShared(t, ps[2], at, 100)
	require.NoError(t, err)
	for _, p := range ps {
		require.NoError(t, p.tick(context.Background(), clk.now()))
	}
	got = emitted(sinks)
	require.Len(t, got, 2)
	assert.Equal(t, total+100, got[1].value)
	var kinds []string
	for _, s := range sinks {
		for _, md := range s.AllMetrics() {
			m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
			k, _ := m.Metadata().Get(otelmap.MetaWindow)
			kinds = append(kinds, k.AsString())
		}
	}
	assert.ElementsMatch(t, []string{otelmap.WindowClosed, otelmap.WindowRestatement}, kinds)
}

// The database down: values are refused as retryable and counted nowhere;
// service resumes when it is back.
func TestSharedDatabaseDownRefusesValues(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 15, 0, 0, time.UTC)
	clk := &clock{t: at}
	ps, _, srv := sharedCollectors(t, 2, clk)
	_, err := postShared(t, ps[0], at, 5)
	require.NoError(t, err)

	require.NoError(t, srv.Stop("immediate"))
	_, err = postShared(t, ps[1], at, 1000)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "retryable: 503 upstream")
	assert.NotContains(t, err.Error(), "127.0.0.1", "no addresses in what clients see")

	require.NoError(t, srv.Start())
	require.Eventually(t, func() bool {
		got, err := postShared(t, ps[1], at, 1)
		if err != nil {
			return false
		}
		assert.Equal(t, 6.0, got, "the refused value was not counted")
		return true
	}, 20*time.Second, 100*time.Millisecond)
}

// A merge round holding one batch that would make a figure non-finite
// refuses that batch only; the others of the round count.
func TestSharedRoundRefusesOnlyTheNonFiniteBatch(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 15, 0, 0, time.UTC)
	ps, _, _ := sharedCollectors(t, 1, &clock{t: at})
	p := ps[0]
	_, err := postShared(t, p, at, 1e308)
	require.NoError(t, err)

	delta := func(v float64) pgwindows.Delta {
		var c aggregation.Compact
		c.Add(aggregation.Sum, v, 1, at.UnixNano(), 1)
		var w *windows.Window
		p.windows.Each(func(x windows.Window) { w = &x })
		require.NotNil(t, w, "the window of the first value is cached")
		return pgwindows.Delta{Series: w.Series(), Interval: w.Interval, Start: w.Start, End: w.End, Fn: aggregation.Sum, State: c}
	}
	good, bad, good2 := &merge{deltas: []pgwindows.Delta{delta(1)}}, &merge{deltas: []pgwindows.Delta{delta(1e308)}}, &merge{deltas: []pgwindows.Delta{delta(2)}}
	require.NoError(t, p.shared.write([]*merge{good, bad, good2}))
	require.NoError(t, good.err)
	require.ErrorIs(t, bad.err, pgwindows.ErrNonFinite)
	require.NoError(t, good2.err)
	assert.Equal(t, 1e308+3, good2.merged[0].State.Value(aggregation.Sum))
}

// With restatement_retention, emitted windows past it (and a day more, for
// clocks that disagree) leave window_states.
func TestSharedPrunesPastRetention(t *testing.T) {
	srv, err := pgserver.Start(pgserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Remove)
	at := time.Date(2024, 3, 1, 10, 15, 0, 0, time.UTC)
	clk := &clock{t: at}
	cfg := defaultCfg()
	cfg.Postgres = &PostgresConfig{DSN: configopaque.String(srv.DSN("postgres"))}
	cfg.CheckInterval = time.Hour
	cfg.RestatementRetention = 48 * time.Hour
	p := newTestProcessor(t, cfg, new(consumertest.MetricsSink), clk, nil)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, p.Shutdown(context.Background())) })
	rows := func() (n int) {
		require.NoError(t, p.shared.pool.QueryRow(context.Background(), `SELECT count(*) FROM window_states`).Scan(&n))
		return n
	}
	_, err = postShared(t, p, at, 1)
	require.NoError(t, err)
	tick := func(d time.Duration) {
		clk.set(at.Add(d))
		require.NoError(t, p.tick(context.Background(), clk.now()))
	}
	tick(2 * time.Hour) // emitted
	assert.Equal(t, 1, rows())
	tick(48*time.Hour + 2*time.Hour) // past the retention, not past the day more
	assert.Equal(t, 1, rows())
	tick(72*time.Hour + 2*time.Hour)
	assert.Zero(t, rows(), "pruned")
}
