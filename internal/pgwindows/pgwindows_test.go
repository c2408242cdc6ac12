package pgwindows

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
	"github.com/custommetrics/bundle/internal/pgserver/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newStore returns a Store on database dsn; each call has its own pool, as
// each collector would.
func newStore(t testing.TB, dsn string) *Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := New(context.Background(), pool)
	require.NoError(t, err)
	return s
}

func delta(series string, fn aggregation.Func, start int64, points ...[3]float64) Delta {
	d := Delta{Series: []byte(series), Interval: calendar.Day, Start: start, End: start + 86_400e9, Fn: fn}
	for _, p := range points { // value, timestamp, sequence
		d.State.Add(fn, p[0], 1, int64(p[1]), uint64(p[2]))
	}
	return d
}

// Writers on separate pools (as separate collectors would be) add to the
// same windows concurrently; every window ends as aggregation.Compact.Merge
// of everything acknowledged, for every function, and every answer already
// holds the answering writer's earlier values.
func TestConcurrentWritersMergeLikeCompact(t *testing.T) {
	const writers, rounds = 4, 60
	dsn := pgtest.NewDatabase(t)
	stores := make([]*Store, writers)
	for i := range stores {
		stores[i] = newStore(t, dsn)
	}
	var mu sync.Mutex
	want := map[string]aggregation.Compact{}
	fnOf := map[string]aggregation.Func{}
	var wg sync.WaitGroup
	for wi := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(wi), 7))
			own := map[string]uint64{}
			for r := range rounds {
				var ds []Delta
				for range 1 + rng.IntN(4) {
					fn := aggregation.Funcs[rng.IntN(len(aggregation.Funcs))]
					series := fmt.Sprintf("s%d-%s", rng.IntN(3), fn)
					var pts [][3]float64
					for range 1 + rng.IntN(3) {
						// Integers: sums are exact in any order. Few distinct
						// timestamps and sequences: First/Last ties happen.
						pts = append(pts, [3]float64{float64(rng.IntN(200) - 100), float64(rng.IntN(5) - 2), float64(rng.IntN(3))})
					}
					ds = append(ds, delta(series, fn, -86_400e9, pts...)) // a window before 1970
				}
				got, err := stores[wi].Merge(context.Background(), ds)
				if !assert.NoError(t, err, "writer %d round %d", wi, r) {
					return
				}
				mu.Lock()
				for i, d := range ds {
					c := want[string(d.Series)]
					c.Merge(d.Fn, d.State)
					want[string(d.Series)] = c
					fnOf[string(d.Series)] = d.Fn
					own[string(d.Series)] += d.State.Count()
					assert.GreaterOrEqual(t, got[i].State.Count(), own[string(d.Series)], "an answer holds the writer's own earlier values")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.NotEmpty(t, want)
	for series, c := range want {
		fn := fnOf[series]
		m, ok, err := stores[0].get(context.Background(), []byte(series), calendar.Day, -86_400e9, fn)
		require.NoError(t, err)
		require.True(t, ok, series)
		assert.Equal(t, c.Fields(), m.State.Fields(), "%s: the stored state is the merge of every acknowledged delta", series)
		assert.Equal(t, c.Value(fn), m.State.Value(fn), series)
	}
}

// A value acknowledged by one writer is in the next answer of any other.
func TestAnswerHoldsOtherWritersAcknowledgedValues(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := newStore(t, dsn), newStore(t, dsn)
	ctx := context.Background()
	for i, s := range []*Store{a, b, a, b} {
		got, err := s.Merge(ctx, []Delta{delta("sum", aggregation.Sum, 0, [3]float64{float64(i + 1), 0, 0})})
		require.NoError(t, err)
		assert.Equal(t, float64((i+1)*(i+2)/2), got[0].State.Value(aggregation.Sum))
		assert.Equal(t, int64(i+1), got[0].Revision)
	}
}

// A batch whose merge would make one figure non-finite changes nothing.
func TestMergeIsAllOrNothing(t *testing.T) {
	s := newStore(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	_, err := s.Merge(ctx, []Delta{delta("big", aggregation.Sum, 0, [3]float64{1e308, 0, 0})})
	require.NoError(t, err)

	for name, bad := range map[string]Delta{
		"sum overflows":     delta("big", aggregation.Sum, 0, [3]float64{1e308, 0, 0}),
		"no weight at all":  {Series: []byte("avg"), Interval: calendar.Day, Fn: aggregation.Average, State: zeroWeight()},
		"another function":  delta("big", aggregation.Max, 0, [3]float64{1, 0, 0}),
		"negative overflow": delta("big", aggregation.Sum, 0, [3]float64{-1e308, 0, 0}, [3]float64{-1e308, 0, 0}, [3]float64{-1e308, 0, 0}),
	} {
		t.Run(name, func(t *testing.T) {
			ok := delta("other", aggregation.Count, 0, [3]float64{1, 0, 0})
			_, err := s.Merge(ctx, []Delta{ok, bad})
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrNonFinite) || errors.Is(err, ErrFunc), err)
			_, stored, err := s.get(ctx, []byte("other"), calendar.Day, 0, aggregation.Count)
			require.NoError(t, err)
			assert.False(t, stored, "the good delta of a refused batch is not stored")
			m, _, err := s.get(ctx, []byte("big"), calendar.Day, 0, aggregation.Sum)
			require.NoError(t, err)
			assert.Equal(t, 1e308, m.State.Value(aggregation.Sum), "the window keeps its last finite figure")
			assert.Equal(t, int64(1), m.Revision)
		})
	}
}

func zeroWeight() aggregation.Compact {
	var c aggregation.Compact
	c.Add(aggregation.Average, 5, 0, 0, 1)
	return c
}

// First and Last break ties as Merge does (timestamp, then arrival, then
// value), whatever order the writers' deltas reach the store in.
func TestFirstLastTiesAreDeterministic(t *testing.T) {
	s := newStore(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	points := [][3]float64{{7, 5, 2}, {3, 5, 2}, {9, 5, 1}, {1, 6, 0}, {4, 4, 9}, {math.Copysign(0, -1), 4, 9}, {0, 4, 9}}
	for _, fn := range []aggregation.Func{aggregation.First, aggregation.Last} {
		for _, rev := range []bool{false, true} {
			series := fmt.Sprintf("%s-%v", fn, rev)
			var want aggregation.Compact
			for i := range points {
				p := points[i]
				if rev {
					p = points[len(points)-1-i]
				}
				d := delta(series, fn, 0, p)
				want.Merge(fn, d.State)
				_, err := s.Merge(ctx, []Delta{d})
				require.NoError(t, err)
			}
			m, _, err := s.get(ctx, []byte(series), calendar.Day, 0, fn)
			require.NoError(t, err)
			assert.Equal(t, want.Fields(), m.State.Fields(), series)
		}
	}
}

// BenchmarkMerge: windows merged per second, one Merge per batch of windows
// (one transaction, pipelined upserts). Reported: windows/s.
func BenchmarkMerge(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := newStore(b, pgtest.NewDatabase(b))
			ds := make([]Delta, batch)
			for i := range ds {
				ds[i] = delta(fmt.Sprintf("bench-%d-%d", batch, i), aggregation.Sum, 0, [3]float64{1, 0, 0})
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Merge(context.Background(), ds); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "windows/s")
		})
	}
}

// Emitters on several collectors each get a disjoint share of the due
// windows; every revision is emitted once; a failed emission is handed out
// again; a late value makes a restatement; open windows go out as running
// figures only when asked for.
func TestEmitHandsEachRevisionToOneEmitter(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	stores := []*Store{newStore(t, dsn), newStore(t, dsn), newStore(t, dsn)}
	ctx := context.Background()
	const day = int64(86_400e9)
	var ds []Delta
	for i := range 50 {
		d := delta(fmt.Sprintf("closed%d", i), aggregation.Sum, 0, [3]float64{float64(i), 0, 0})
		d.Identity = []byte(fmt.Sprintf("id%d", i))
		ds = append(ds, d)
	}
	open := delta("open", aggregation.Sum, 10*day, [3]float64{7, 0, 0})
	ds = append(ds, open)
	_, err := stores[0].Merge(ctx, ds)
	require.NoError(t, err)
	now := 5 * day // windows of day 0 are closed, the one of day 10 is open

	// A failing emitter leaves everything to the next.
	_, err = stores[1].Emit(ctx, now, false, 1000, func([]Claimed) error { return errors.New("exporter down") })
	require.Error(t, err)

	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := s.Emit(ctx, now, false, 7, func(cs []Claimed) error {
					mu.Lock()
					defer mu.Unlock()
					for _, c := range cs {
						assert.Equal(t, Closed, c.Kind)
						seen[string(c.Identity)]++
					}
					return nil
				})
				if !assert.NoError(t, err) || n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, 50)
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s emitted once", id)
	}

	// A late value: one restatement, with the complete figure.
	_, err = stores[2].Merge(ctx, []Delta{delta("closed3", aggregation.Sum, 0, [3]float64{100, 0, 0})})
	require.NoError(t, err)
	var got []Claimed
	_, err = stores[1].Emit(ctx, now, true, 1000, func(cs []Claimed) error { got = append(got, cs...); return nil })
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, Restated, got[0].Kind)
	assert.Equal(t, 103.0, got[0].State.Value(aggregation.Sum))
	assert.Equal(t, int64(2), got[0].Revision)
	assert.Equal(t, Running, got[1].Kind)
	assert.Equal(t, 7.0, got[1].State.Value(aggregation.Sum))

	// Nothing changed since: nothing to emit, running or not.
	n, err := stores[0].Emit(ctx, now, true, 1000, func([]Claimed) error { return nil })
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A series' due windows go out in order, one closed window per emission,
// even with several emitters: another gets none of them while they are being
// emitted. The series' open windows go with its first due window, as far as
// they can be locked (one held by a merge waits, and those after it); limit
// bounds the count.
func TestEmitKeepsSeriesOrder(t *testing.T) {
	var a, b *Store
	fresh := func() { // each part on its own database
		dsn := pgtest.NewDatabase(t)
		a, b = newStore(t, dsn), newStore(t, dsn)
	}
	fresh()
	ctx := context.Background()
	const day = int64(86_400e9)
	write := func(series string, days ...int) {
		var ds []Delta
		for _, d := range days {
			ds = append(ds, delta(series, aggregation.Sum, int64(d)*day, [3]float64{float64(d + 1), 0, 0}))
		}
		_, err := a.Merge(ctx, ds)
		require.NoError(t, err)
	}
	type out struct {
		starts []int64
		kinds  []Kind
	}
	emit := func(s *Store, now int64, running bool, limit int, during func()) (o out) {
		_, err := s.Emit(ctx, now, running, limit, func(cs []Claimed) error {
			for _, c := range cs {
				o.starts, o.kinds = append(o.starts, c.Start/day), append(o.kinds, c.Kind)
			}
			if during != nil {
				during()
			}
			return nil
		})
		require.NoError(t, err)
		return o
	}
	nothingElsewhere := func(now int64) func() {
		return func() {
			n, err := b.Emit(ctx, now, true, 1000, func([]Claimed) error { return nil })
			assert.NoError(t, err)
			assert.Zero(t, n, "another emitter gets nothing of the series meanwhile")
		}
	}

	// Three closed days and two open ones.
	write("s", 0, 1, 2, 3, 4)
	now := 3*day + day/2
	assert.Equal(t, out{[]int64{0, 3, 4}, []Kind{Closed, Running, Running}}, emit(a, now, true, 1000, nothingElsewhere(now)))
	assert.Equal(t, out{[]int64{1}, []Kind{Closed}}, emit(a, now, true, 1000, nothingElsewhere(now)))
	assert.Equal(t, out{[]int64{2}, []Kind{Closed}}, emit(a, now, true, 1000, nil))
	assert.Equal(t, out{}, emit(a, now, true, 1000, nil))

	// Open windows only: the first is due, the others go with it.
	fresh()
	write("o", 10, 11, 12)
	assert.Equal(t, out{[]int64{10, 11, 12}, []Kind{Running, Running, Running}}, emit(b, now, true, 1000, nil))

	// A closed day and three open ones, the second held by a merge.
	fresh()
	write("u", 20, 25, 26, 27)
	now = 24*day + day/2
	hold, err := a.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = hold.Exec(ctx, `SELECT 1 FROM window_states WHERE series = 'u' AND start_unix_nano = $1 FOR UPDATE`, 26*day)
	require.NoError(t, err)
	assert.Equal(t, out{[]int64{20, 25}, []Kind{Closed, Running}}, emit(b, now, true, 1000, nil), "up to the locked one")
	require.NoError(t, hold.Rollback(ctx))
	assert.Equal(t, out{[]int64{26}, []Kind{Running}}, emit(b, now, true, 1, nil), "then on from it, limit windows")
	assert.Equal(t, out{[]int64{27}, []Kind{Running}}, emit(b, now, true, 1000, nil))
	assert.Equal(t, out{}, emit(a, now, false, 1000, nil), "closed ones only: nothing left")

	// A window emitted closed, then restated: an emitter whose clock is
	// behind (the window still open to it) does not emit it as running.
	fresh()
	write("c", 30)
	assert.Equal(t, out{[]int64{30}, []Kind{Closed}}, emit(a, 32*day, true, 1000, nil))
	write("c", 30)
	assert.Equal(t, out{}, emit(b, 30*day+day/2, true, 1000, nil), "not running again")
	assert.Equal(t, out{[]int64{30}, []Kind{Restated}}, emit(a, 32*day, true, 1000, nil))
}

// get returns the stored state of a window; ok is false when none is stored.
func (s *Store) get(ctx context.Context, series []byte, iv calendar.Interval, start int64, fn aggregation.Func) (m Merged, ok bool, err error) {
	m, err = scan(s.pool.QueryRow(ctx, `SELECT n, a, w, ts, seq, revision FROM window_states
WHERE series = $1 AND interval = $2 AND start_unix_nano = $3 AND fn = $4`, series, int16(iv), start, int16(fn)), fn)
	if errors.Is(err, pgx.ErrNoRows) {
		return Merged{}, false, nil
	}
	return m, err == nil, err
}

// Prune deletes emitted windows that ended before the cutoff, and keeps
// later ones and those whose last revision is still due.
func TestPrune(t *testing.T) {
	s := newStore(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	const day = int64(86_400e9)
	var ds []Delta
	for d := range 4 {
		ds = append(ds, delta(fmt.Sprint("s", d), aggregation.Sum, int64(d)*day, [3]float64{1, 0, 0}))
	}
	_, err := s.Merge(ctx, ds)
	require.NoError(t, err)
	for {
		n, err := s.Emit(ctx, 10*day, false, 1000, func([]Claimed) error { return nil })
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	_, err = s.Merge(ctx, []Delta{delta("s1", aggregation.Sum, day, [3]float64{1, 0, 0})}) // a restatement, due
	require.NoError(t, err)

	n, err := s.Prune(ctx, 3*day) // windows of days 0 and 1 ended by then
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	for series, want := range map[string]bool{"s0": false, "s1": true, "s2": true, "s3": true} {
		start := int64(series[1]-'0') * day
		_, ok, err := s.get(ctx, []byte(series), calendar.Day, start, aggregation.Sum)
		require.NoError(t, err)
		assert.Equal(t, want, ok, series)
	}
}
