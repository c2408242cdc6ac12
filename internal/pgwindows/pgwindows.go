// Package pgwindows keeps window aggregation states in PostgreSQL and merges
// changes into them atomically, so that any number of processes can add to
// the same windows: each sends the delta of its values (an
// aggregation.Compact) and the server folds it into the stored state in one
// upsert, as aggregation.Compact.Merge does, and answers the merged state.
//
// It is the shared store that the cluster mode of issue #14 builds on; no
// component uses it yet.
//
// Table window_states, one row per series-window:
//
//	series           bytea   the series' identity (opaque here: the caller's canonical key)
//	interval         int2    calendar.Interval
//	start_unix_nano  int8    window start; (series, interval, start_unix_nano) is the key
//	end_unix_nano    int8    window end
//	fn               int2    aggregation.Func, fixed by the first write
//	n                int8    number of values
//	a                float8  Sum: sum; Min/Max: min/max; First/Last: the value; Average: Σv·w
//	w                float8  Average: Σw
//	ts, seq, vkey    int8    First/Last: the value's timestamp, arrival sequence and order
//	                         key (aggregation.OrderKey), compared as Merge compares points;
//	                         seq and vkey are unsigned, stored with the top bit flipped so
//	                         that PostgreSQL's signed order is their order
//	revision         int8    1 at the first write, +1 with every merge
package pgwindows // import "github.com/custommetrics/bundle/internal/pgwindows"

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/custommetrics/bundle/internal/aggregation"
	"github.com/custommetrics/bundle/internal/calendar"
)

// Schema creates the table; it is idempotent.
const Schema = `CREATE TABLE IF NOT EXISTS window_states (
  series bytea NOT NULL,
  interval int2 NOT NULL,
  start_unix_nano int8 NOT NULL,
  end_unix_nano int8 NOT NULL,
  fn int2 NOT NULL,
  n int8 NOT NULL,
  a float8 NOT NULL,
  w float8 NOT NULL,
  ts int8 NOT NULL,
  seq int8 NOT NULL,
  vkey int8 NOT NULL,
  revision int8 NOT NULL,
  PRIMARY KEY (series, interval, start_unix_nano)
)`

// Errors of Merge; nothing of the call was applied.
var (
	// ErrNonFinite: a merged figure would not be finite (a sum beyond
	// ±1.8e308, or an Average whose weights sum to 0).
	ErrNonFinite = errors.New("pgwindows: the merged figure of a window would not be finite")
	// ErrFunc: a window is stored with another aggregation function.
	ErrFunc = errors.New("pgwindows: the window is stored with another aggregation function")
)

// A Delta is what one writer adds to one window.
type Delta struct {
	Series   []byte
	Interval calendar.Interval
	Start    int64
	End      int64
	Fn       aggregation.Func
	State    aggregation.Compact
}

// Merged is a window's state after a merge, and its revision.
type Merged struct {
	State    aggregation.Compact
	Revision int64
}

// Store is a window_states table; safe for concurrent use.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool, creating the table when missing.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if _, err := pool.Exec(ctx, Schema); err != nil {
		return nil, fmt.Errorf("pgwindows: creating window_states: %w", err)
	}
	return &Store{pool: pool}, nil
}

// unsigned maps an unsigned value to an int8 column with the same order.
func unsigned(u uint64) int64 { return int64(u ^ 1<<63) }

func fromUnsigned(i int64) uint64 { return uint64(i) ^ 1<<63 }

// takes is true when the incoming point replaces the stored one: an earlier
// point for First, a later one for Last (points ordered as Merge orders them).
var takes = fmt.Sprintf(`((t.fn = %d AND (excluded.ts, excluded.seq, excluded.vkey) < (t.ts, t.seq, t.vkey)) OR
  (t.fn = %d AND (t.ts, t.seq, t.vkey) < (excluded.ts, excluded.seq, excluded.vkey)))`, aggregation.First, aggregation.Last)

var upsert = `INSERT INTO window_states AS t
  (series, interval, start_unix_nano, end_unix_nano, fn, n, a, w, ts, seq, vkey, revision)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)
ON CONFLICT (series, interval, start_unix_nano) DO UPDATE SET
  n = t.n + excluded.n,
  a = CASE
    WHEN t.fn IN (` + fmt.Sprint(int(aggregation.Sum), ", ", int(aggregation.Average)) + `) THEN t.a + excluded.a
    WHEN t.fn = ` + fmt.Sprint(int(aggregation.Min)) + ` THEN LEAST(t.a, excluded.a)
    WHEN t.fn = ` + fmt.Sprint(int(aggregation.Max)) + ` THEN GREATEST(t.a, excluded.a)
    WHEN ` + takes + ` THEN excluded.a
    ELSE t.a END,
  w = t.w + excluded.w,
  ts = CASE WHEN ` + takes + ` THEN excluded.ts ELSE t.ts END,
  seq = CASE WHEN ` + takes + ` THEN excluded.seq ELSE t.seq END,
  vkey = CASE WHEN ` + takes + ` THEN excluded.vkey ELSE t.vkey END,
  revision = t.revision + 1
WHERE t.fn = excluded.fn
RETURNING n, a, w, ts, seq, revision`

// row returns the upsert's arguments for d.
func row(d *Delta) []any {
	f := d.State.Fields()
	var w float64
	var ts, seq, vkey int64
	switch d.Fn {
	case aggregation.Average:
		w = math.Float64frombits(f.B)
	case aggregation.First, aggregation.Last:
		ts, seq, vkey = int64(f.B), unsigned(f.C), unsigned(aggregation.OrderKey(f.A))
	}
	return []any{d.Series, int16(d.Interval), d.Start, d.End, int16(d.Fn), int64(f.Count), f.A, w, ts, seq, vkey}
}

// Merge folds every delta into its window, in one transaction: all of them
// or, on error, none. It returns each window's merged state, in the order of
// deltas; a delta with no values changes nothing and is answered with the
// stored state (revision 0 when none is stored). Deltas of one window are
// merged in their order.
func (s *Store) Merge(ctx context.Context, deltas []Delta) ([]Merged, error) {
	// Rows are locked in key order, so concurrent Merges cannot deadlock.
	order := make([]int, len(deltas))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		a, b := &deltas[i], &deltas[j]
		return cmp.Or(strings.Compare(string(a.Series), string(b.Series)),
			cmp.Compare(a.Interval, b.Interval), cmp.Compare(a.Start, b.Start))
	})
	out := make([]Merged, len(deltas))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, i := range order {
			d := &deltas[i]
			if d.State.Count() == 0 {
				b.Queue(`SELECT n, a, w, ts, seq, revision FROM window_states
WHERE series = $1 AND interval = $2 AND start_unix_nano = $3 AND fn = $4`, d.Series, int16(d.Interval), d.Start, int16(d.Fn))
				continue
			}
			b.Queue(upsert, row(d)...)
		}
		res := tx.SendBatch(ctx, &b)
		for _, i := range order {
			d := &deltas[i]
			m, err := scan(res.QueryRow(), d.Fn)
			switch {
			case errors.Is(err, pgx.ErrNoRows) && d.State.Count() == 0:
				continue // nothing stored, nothing added
			case errors.Is(err, pgx.ErrNoRows):
				_ = res.Close()
				return fmt.Errorf("%w (%s window starting at %d)", ErrFunc, d.Interval, d.Start)
			case err != nil:
				_ = res.Close()
				return err
			}
			if !m.State.Finite(d.Fn) {
				_ = res.Close()
				return fmt.Errorf("%w (%s window starting at %d)", ErrNonFinite, d.Interval, d.Start)
			}
			out[i] = m
		}
		return res.Close()
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22003" { // numeric_value_out_of_range: a float8 sum overflowed
		err = fmt.Errorf("%w: %s", ErrNonFinite, pgErr.Message)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the stored state of a window; ok is false when none is stored.
func (s *Store) Get(ctx context.Context, series []byte, iv calendar.Interval, start int64, fn aggregation.Func) (m Merged, ok bool, err error) {
	m, err = scan(s.pool.QueryRow(ctx, `SELECT n, a, w, ts, seq, revision FROM window_states
WHERE series = $1 AND interval = $2 AND start_unix_nano = $3 AND fn = $4`, series, int16(iv), start, int16(fn)), fn)
	if errors.Is(err, pgx.ErrNoRows) {
		return Merged{}, false, nil
	}
	return m, err == nil, err
}

func scan(r pgx.Row, fn aggregation.Func) (Merged, error) {
	var n, ts, seq, rev int64
	var a, w float64
	if err := r.Scan(&n, &a, &w, &ts, &seq, &rev); err != nil {
		return Merged{}, err
	}
	f := aggregation.Fields{Count: uint64(n), A: a}
	switch fn {
	case aggregation.Average:
		f.B = math.Float64bits(w)
	case aggregation.First, aggregation.Last:
		f.B, f.C = uint64(ts), fromUnsigned(seq)
	}
	return Merged{State: aggregation.CompactOfFields(f), Revision: rev}, nil
}
